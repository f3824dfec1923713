#!/usr/bin/env bash
# Installs what ctrfs needs to build, test and demo on a fresh Debian 12 machine.
# Run as root. Idempotent: a second run only checks and returns quickly.
set -euo pipefail

say() { printf 'deps.sh: %s\n' "$*"; }
die() { printf 'deps.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must be run as root (it installs packages and uses /dev/fuse)"

# fuse3: fusermount3 and the FUSE userspace tools; runc, busybox-static, umoci: the task
# runtime and its test root filesystems; attr: getfattr/setfattr; jq: the demo and shell
# tests; util-linux: mount, umount, findmnt, mountpoint; procps: ps and friends for process
# checks; ca-certificates, pkg-config: crates that build C code; rsync, tar, ed, vim-tiny,
# moreutils (sponge), ansible-core, inotify-tools: the tools the tests run against the mount;
# systemd: systemd-analyze, which checks the unit in packaging/systemd (nothing is started).
packages=(
    fuse3 runc busybox-static attr jq umoci util-linux procps findutils coreutils bc
    ca-certificates pkg-config rsync tar ed vim-tiny moreutils ansible-core inotify-tools systemd
)

installed() {
    # `dpkg -s` also knows removed packages whose config files remain, so read the status.
    dpkg -s "$1" 2>/dev/null | grep -qx 'Status: install ok installed'
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    for p in "${missing[@]}"; do
        installed "$p" || die "package $p is still not installed after apt-get install"
    done
else
    say "all ${#packages[@]} packages present"
fi

# The Rust toolchain comes from rustup, not from apt; it lives in ~/.cargo/bin.
if ! command -v cargo >/dev/null 2>&1; then
    for d in "${CARGO_HOME:-}/bin" "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
        if [ -x "$d/cargo" ]; then
            PATH="$d:$PATH"
            export PATH
            break
        fi
    done
fi
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found on PATH nor in ~/.cargo/bin; install a Rust toolchain (rustup) first"
say "cargo: $(cargo --version)"

# The FUSE device: load the module if the node is missing.
if [ ! -c /dev/fuse ]; then
    say "/dev/fuse missing; loading the fuse module"
    if command -v modprobe >/dev/null 2>&1; then
        modprobe fuse || true
    fi
    # Inside some containers the module is loaded but the node was never created.
    if [ ! -c /dev/fuse ] && grep -qw fuse /proc/filesystems 2>/dev/null; then
        mknod -m 0666 /dev/fuse c 10 229 || true
    fi
fi
[ -c /dev/fuse ] || die "/dev/fuse is not available (modprobe fuse failed); FUSE mounts cannot work here"
command -v fusermount3 >/dev/null 2>&1 || die "fusermount3 not found although fuse3 is installed"
say "ok"
