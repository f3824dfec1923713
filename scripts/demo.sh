#!/usr/bin/env bash
# A guided tour of ctrfs: mounts a fresh state directory, walks through images and
# containers with ordinary shell commands (each echoed as "+ cmd" before its output),
# then unmounts. Run as root. Everything lives in a temporary directory removed at exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { printf '\n# %s\n' "$*"; }
die() { printf 'demo.sh: error: %s\n' "$*" >&2; exit 1; }

bash scripts/deps.sh >/dev/null
if ! command -v cargo >/dev/null 2>&1; then
    for d in "${CARGO_HOME:-}/bin" "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
        if [ -x "$d/cargo" ]; then PATH="$d:$PATH"; export PATH; break; fi
    done
fi

cargo build --release
bin="$repo/target/release/ctrfs"
[ -x "$bin" ] || die "$bin was not built"

tmp="$(mktemp -d /tmp/ctrfs-demo.XXXXXX)"
state="$tmp/state"
mnt="$tmp/mnt"
mkdir -p "$state" "$mnt"
daemon_pid=""
ok=0

# PID of the background daemon serving $state: the process running our binary with $state
# among its arguments (plain or as --root=...), else whoever holds the LMDB files open.
find_daemon() {
    local d arg args want_exe
    want_exe="$(readlink -f "$bin")"
    for d in /proc/[0-9]*; do
        [ "$(readlink -f "$d/exe" 2>/dev/null)" = "$want_exe" ] || continue
        args=()
        mapfile -d '' args 2>/dev/null <"$d/cmdline" || continue
        for arg in "${args[@]}"; do
            if [ "$arg" = "$state" ] || [ "$arg" = "--root=$state" ]; then
                echo "${d#/proc/}"
                return 0
            fi
        done
    done
    if command -v fuser >/dev/null 2>&1; then
        fuser "$state/db/lock.mdb" "$state/db/data.mdb" 2>/dev/null | awk '{ print $1; exit }'
    fi
}

# Waits up to $1 seconds for the daemon to exit; returns 1 if it is still running.
wait_daemon_exit() {
    local i
    [ -n "$daemon_pid" ] || return 0
    for ((i = 0; i < $1 * 10; i++)); do
        kill -0 "$daemon_pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

cleanup() {
    local rc=$?
    cd /
    if mountpoint -q "$mnt" 2>/dev/null; then
        # Tasks outlive the daemon by design: remove (and so kill) the demo's own first.
        rm -f "$mnt"/tasks/* 2>/dev/null || true
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    fi
    if ! wait_daemon_exit 10; then
        echo "demo.sh: daemon $daemon_pid did not exit after unmount; sending SIGTERM" >&2
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait_daemon_exit 5 || kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    if [ "$ok" != 1 ] && [ -f "$state/ctrfs.log" ]; then
        echo "demo.sh: failed (exit $rc); last lines of the daemon log:" >&2
        tail -n 20 "$state/ctrfs.log" >&2 || true
    fi
    if mountpoint -q "$mnt" 2>/dev/null; then
        echo "demo.sh: $mnt is still mounted; leaving $tmp in place" >&2
    else
        rm -rf --one-file-system -- "$tmp"
    fi
}
trap cleanup EXIT

# run CMD: echo it, run it in the current directory, fail the demo if it fails.
run() {
    printf '+ %s\n' "$1"
    bash -o pipefail -c "$1" || die "command failed: $1"
}
# refused CMD: echo it, run it, and expect it to fail (its error message is the point).
refused() {
    printf '+ %s\n' "$1"
    if bash -o pipefail -c "$1"; then die "expected a refusal: $1"; fi
}
# go DIR: a visible cd.
go() {
    printf '+ cd %s\n' "$1"
    cd "$1"
}

say "mount a fresh state directory"
printf '+ ctrfs mount %s --root %s\n' "$mnt" "$state"
"$bin" mount "$mnt" --root "$state"
mountpoint -q "$mnt" || die "ctrfs mount returned but $mnt is not a mount point"
daemon_pid="$(find_daemon || true)"
[ -n "$daemon_pid" ] || echo "demo.sh: note: could not find the daemon's PID; relying on umount alone"

go "$mnt"
run 'ls'

say "an image is a name pointing at a content descriptor"
image=images/docker.io/library/busybox:1.36
run "mkdir -p $image"
go "$image"
digest="$(printf 'ctrfs demo index' | sha256sum | cut -d' ' -f1)"
run "echo '{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:$digest\",\"size\":9218}' > target"
run 'cat target'
run "echo 'env=prod' > labels"
run "echo 'team=infra' >> labels"
run 'cat labels'
run 'getfattr -d .'
run 'jq . info.json'
go ../../../..

say "a container is metadata: a spec, the image it came from, labels"
run 'mkdir containers/meta'
run "echo '{\"ociVersion\":\"1.2.0\",\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"}}' > containers/meta/spec"
run 'echo docker.io/library/busybox:1.36 > containers/meta/image'
run 'ls -l containers/meta'
run 'cat containers/meta/info.json | jq'
run 'rm -r containers/meta'

say "an invalid document is refused at write(); the stored value stays"
before="$(cat "$image/target")"
refused "echo '{bad' > $image/target"
run "cat $image/target"
[ "$(cat "$image/target")" = "$before" ] || die "the refused write changed $image/target"

say "an OCI image, built with umoci from busybox in two layers (layer 2 deletes a file)"
layout="$tmp/layout"
bundle="$tmp/bundle"
printf '+ umoci init / new / unpack / repack ...   # a real OCI image layout in %s\n' "$layout"
umoci init --layout "$layout" >/dev/null
umoci new --image "$layout:1.0" >/dev/null
umoci unpack --image "$layout:1.0" "$bundle" >/dev/null 2>&1
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys" "$bundle/rootfs/tmp"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for applet in sh echo sleep cat ls uname; do ln -sf busybox "$bundle/rootfs/bin/$applet"; done
echo "from layer 1" > "$bundle/rootfs/etc/motd"
echo "deleted by layer 2" > "$bundle/rootfs/etc/old"
umoci repack --image "$layout:1.0" "$bundle" >/dev/null
rm -rf "$bundle"
umoci unpack --image "$layout:1.0" "$bundle" >/dev/null 2>&1
rm "$bundle/rootfs/etc/old"
echo "from layer 2" >> "$bundle/rootfs/etc/motd"
umoci repack --image "$layout:1.0" "$bundle" >/dev/null
umoci gc --layout "$layout" >/dev/null
run "jq -c '.manifests[0]' $layout/index.json"

say "import it through the mount: blobs into content/, the descriptor into images/NAME/target"
run "$bin import $mnt $layout --name demo/busybox:1.0"
run 'ls -l content/sha256'
run 'cat images/demo/busybox:1.0/target'

say "a container of that image: writing its snapshot key unpacks the layers"
# runc spec's defaults, with a writable root and the demo's own command.
printf '+ (cd %s && runc spec)   # a default OCI spec, then adjusted with jq\n' "$tmp"
(cd "$tmp" && runc spec && mv config.json spec.json)
run 'mkdir containers/web'
run "jq '.process.terminal=false | .root.readonly=false | .process.args=[\"sh\",\"-c\",\"cat /etc/motd; ls /etc; echo written-by-web > /tmp/note; exit 7\"]' $tmp/spec.json > containers/web/spec"
run 'echo demo/busybox:1.0 > containers/web/image'
run 'echo web-rootfs > containers/web/snapshot'
run 'ls snapshots'
run 'cat snapshots/web-rootfs/kind snapshots/web-rootfs/parent snapshots/web-rootfs/references'
run 'jq -c . snapshots/web-rootfs/mounts'

say "a task is the container's process, run by runc on that snapshot"
run 'touch tasks/web'
run 'cat wait/web'
run 'cat logs/web/stdout logs/web/stderr'
run 'jq . tasks/web'
refused 'rmdir containers/web'
refused "rm content/sha256/$(jq -r '.manifests[0].digest' "$layout/index.json" | cut -d: -f2)"
# The process is pid 1 of its pid namespace: it gets only the signals it handles.
run "jq '.process.terminal=false | .root.readonly=false | .process.args=[\"sh\",\"-c\",\"cat /tmp/note; trap \\\"exit 143\\\" TERM; while true; do sleep 0.2; done\"]' $tmp/spec.json > containers/web/spec"
run 'echo start > tasks/web'
run 'jq -r .status tasks/web'
run 'echo pause > tasks/web; jq -r .status tasks/web'
run 'echo resume > tasks/web; echo TERM > tasks/web'
run 'cat wait/web'
run 'tail -n 1 logs/web/stdout'
run 'rm tasks/web'

say "deleting the container deletes its snapshot; deleting the image collects the rest"
run 'rm -r containers/web'
run 'ls snapshots'
run 'rmdir images/demo/busybox:1.0'
run 'ls content/sha256 snapshots'
run "ls -A $state/content/blobs/sha256 $state/rootfs $state/snapshots   # on disk: only the snapshotter's name"

say "rm -r and rmdir delete the records"
run "rmdir $image"
run 'rmdir images/docker.io/library images/docker.io images/demo'
run 'ls -R images containers tasks'

say "unmount: the daemon exits by itself"
cd /
run "umount $mnt"
wait_daemon_exit 10 || die "the daemon (PID $daemon_pid) was still running 10 s after umount"
if [ -f "$state/ctrfs.log" ]; then
    say "the daemon's log ($state/ctrfs.log)"
    tail -n 20 "$state/ctrfs.log"
fi
ok=1
echo
echo "demo.sh: done"
