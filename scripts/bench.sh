#!/usr/bin/env bash
# Benchmarks of ctrfs against a baseline measured in the same run: the same shell loop on a
# plain directory of the host (the fork/exec cost of the shell tools is in both, so the
# ratio shows what ctrfs adds). Figures are printed, never asserted.
#   scripts/bench.sh [N]     N iterations per loop (default 1000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-1000}"

bash scripts/deps.sh >/dev/null
cargo build --release --quiet
bin="$PWD/target/release/ctrfs"

work="$(mktemp -d /tmp/ctrfs-bench.XXXXXX)"
mnt="$work/mnt"; state="$work/state"; plain="$work/plain"
mkdir -p "$mnt" "$state" "$plain"
daemon_pid=""
cleanup() {
    if grep -qs " $mnt " /proc/mounts; then umount "$mnt" || umount -l "$mnt"; fi
    if [ -n "$daemon_pid" ]; then
        # umount ends the daemon; wait for its own pid with a deadline.
        for _ in $(seq 1 500); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.01; done
        kill -0 "$daemon_pid" 2>/dev/null && kill "$daemon_pid"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" mount "$mnt" --root "$state" >"$work/mount.out"
daemon_pid="$(sed -n 's/.*daemon pid \([0-9]*\).*/\1/p' "$work/mount.out")"

seconds() {  # seconds DIR SCRIPT: wall time of SCRIPT run by sh in DIR
    local start end
    start=$(date +%s.%N)
    (cd "$1" && N="$n" sh -c "$2")
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
report() {  # report NAME CTRFS_SECONDS BASELINE_SECONDS
    printf '%-38s ctrfs %8.0f ops/s   baseline %8.0f ops/s   ratio %5.2fx\n' \
        "$1" "$(echo "$n / $2" | bc -l)" "$(echo "$n / $3" | bc -l)" "$(echo "$2 / $3" | bc -l)"
}

mkdir -p "$plain/containers"
create='i=0; while [ $i -lt $N ]; do mkdir containers/c$i && echo "k=$i" >> containers/c$i/labels; i=$((i+1)); done'
read_loop='i=0; while [ $i -lt $N ]; do cat containers/c$i/labels >/dev/null; i=$((i+1)); done'
label_loop='i=0; while [ $i -lt $N ]; do echo "n=$i" >> containers/c0/labels; i=$((i+1)); done'
stat_loop='i=0; while [ $i -lt $N ]; do [ -s containers/c$i/labels ]; i=$((i+1)); done'

echo "ctrfs benchmark: $n iterations per loop, $(nproc) cores, release build"
report "mkdir + echo >> labels"   "$(seconds "$mnt" "$create")"    "$(seconds "$plain" "$create")"
report "cat labels (open+read+close)" "$(seconds "$mnt" "$read_loop")" "$(seconds "$plain" "$read_loop")"
report "echo >> labels (durable commit)" "$(seconds "$mnt" "$label_loop")" "$(seconds "$plain" "$label_loop")"
report "test -s labels (lookup+stat)" "$(seconds "$mnt" "$stat_loop")" "$(seconds "$plain" "$stat_loop")"
echo "listing: $(cd "$mnt" && ls containers | wc -l) containers; daemon RSS $(awk '/VmRSS/{print $2" "$3}' /proc/"$daemon_pid"/status)"

# Content: a large blob streamed in with cp (hashed, synced, renamed) against cp onto the
# host's disk plus sha256sum and sync (what a careful hand-made store would do), and the
# daemon's RSS afterwards (a layer must never be held in memory).
mb="${CTRFS_BENCH_BLOB_MB:-256}"
head -c "$((mb << 20))" /dev/urandom >"$work/blob"
hex="$(sha256sum "$work/blob" | cut -d' ' -f1)"
t_ctrfs="$(seconds "$mnt" "cp $work/blob content/sha256/$hex")"
t_plain="$(seconds "$plain" "cp $work/blob blob.copy && sha256sum blob.copy >/dev/null && sync blob.copy")"
printf '%-38s ctrfs %8.0f MiB/s   baseline %8.0f MiB/s   ratio %5.2fx\n' "cp ${mb} MiB blob into content/" \
    "$(echo "$mb / $t_ctrfs" | bc -l)" "$(echo "$mb / $t_plain" | bc -l)" "$(echo "$t_ctrfs / $t_plain" | bc -l)"
t_ctrfs="$(seconds "$mnt" "cat content/sha256/$hex >/dev/null")"
t_plain="$(seconds "$plain" "cat blob.copy >/dev/null")"
printf '%-38s ctrfs %8.0f MiB/s   baseline %8.0f MiB/s   ratio %5.2fx\n' "cat ${mb} MiB blob" \
    "$(echo "$mb / $t_ctrfs" | bc -l)" "$(echo "$mb / $t_plain" | bc -l)" "$(echo "$t_ctrfs / $t_plain" | bc -l)"
echo "after the blob: daemon RSS $(awk '/VmRSS/{print $2" "$3}' /proc/"$daemon_pid"/status)"

# Unpacking: a gzip layer of /usr/include (thousands of files) made into an image, then a
# container's snapshot key written (unpack + verify + syncfs + prepare) against
# `tar -xzf` + sync into a host directory.
layer_dir="$work/layer"; mkdir -p "$layer_dir"
tar -C / -cf "$layer_dir/layer.tar" usr/include
diff_id="sha256:$(sha256sum "$layer_dir/layer.tar" | cut -d' ' -f1)"
gzip -1 -c "$layer_dir/layer.tar" >"$layer_dir/layer.tgz"
put_blob() {  # put_blob FILE: copies FILE into content/, prints its descriptor fields
    local h; h="$(sha256sum "$1" | cut -d' ' -f1)"
    cp "$1" "$mnt/content/sha256/$h"
    printf '"digest":"sha256:%s","size":%s' "$h" "$(stat -c %s "$1")"
}
layer_desc="$(put_blob "$layer_dir/layer.tgz")"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diff_id" >"$layer_dir/config"
config_desc="$(put_blob "$layer_dir/config")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json",%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",%s}]}' \
    "$config_desc" "$layer_desc" >"$layer_dir/manifest"
manifest_desc="$(put_blob "$layer_dir/manifest")"
mkdir -p "$mnt/images/bench"
printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json",%s}' "$manifest_desc" >"$mnt/images/bench/target"
mkdir "$mnt/containers/unpack"
echo bench >"$mnt/containers/unpack/image"
t_ctrfs="$(seconds "$mnt" "echo unpack-root > containers/unpack/snapshot")"
t_plain="$(seconds "$plain" "mkdir untar && tar -xzf $layer_dir/layer.tgz -C untar && sync")"
files="$(tar -tf "$layer_dir/layer.tar" | wc -l)"
printf '%-38s ctrfs %8.2f s          baseline %8.2f s          ratio %5.2fx\n' "unpack a ${files}-entry gzip layer" \
    "$t_ctrfs" "$t_plain" "$(echo "$t_ctrfs / $t_plain" | bc -l)"
echo "after the unpack: daemon RSS $(awk '/VmRSS/{print $2" "$3}' /proc/"$daemon_pid"/status)"
