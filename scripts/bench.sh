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
