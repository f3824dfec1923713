#!/usr/bin/env bash
# Runs every reliability harness of ctrfs at the size docs/reliability.md reports, and
# writes what each printed to docs/reliability-run.md: the crash harness (kill -9), the
# model-based fuzzer, the hostile-input table, the full disk, the security tests, load
# and soak. Run as root from any directory, after scripts/deps.sh (scripts/test.sh runs
# it). The figures in docs/reliability.md are copied from that file.
#
#   scripts/reliability.sh            the long runs (about 35 minutes on 2 cores)
#   scripts/reliability.sh --quick    the sizes the suite runs (about 2 minutes)
#
# Knobs, each overriding the size chosen above: CTRFS_CRASH_ROUNDS, CTRFS_FUZZ_CASES,
# CTRFS_LOAD_SHELLS, CTRFS_LOAD_SECS, CTRFS_SOAK_CYCLES.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [ "$(id -u)" -ne 0 ]; then
    echo "reliability.sh: run as root (the harnesses mount FUSE filesystems)" >&2
    exit 2
fi

quick=false
case "${1:-}" in
    --quick) quick=true ;;
    "") ;;
    *) echo "usage: scripts/reliability.sh [--quick]" >&2; exit 2 ;;
esac

if $quick; then
    : "${CTRFS_CRASH_ROUNDS:=24}" "${CTRFS_FUZZ_CASES:=256}" "${CTRFS_LOAD_SHELLS:=8}"
    : "${CTRFS_LOAD_SECS:=5}" "${CTRFS_SOAK_CYCLES:=10}"
else
    : "${CTRFS_CRASH_ROUNDS:=500}" "${CTRFS_FUZZ_CASES:=10000}" "${CTRFS_LOAD_SHELLS:=32}"
    : "${CTRFS_LOAD_SECS:=60}" "${CTRFS_SOAK_CYCLES:=200}"
fi
export CTRFS_CRASH_ROUNDS CTRFS_FUZZ_CASES CTRFS_LOAD_SHELLS CTRFS_LOAD_SECS CTRFS_SOAK_CYCLES

out="$repo/docs/reliability-run.md"
work="$(mktemp -d /tmp/ctrfs-reliability.XXXXXX)"
# Searchable by others: the security tests read fixtures below it as uid 65534.
chmod 0755 "$work"
export TMPDIR="$work"      # every fixture's state directory and mount point
failed=()
child=""

# A run interrupted stops its own test process group, and nothing else.
stop_child() {
    if [ -n "$child" ]; then
        kill -TERM -- "-$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
}
trap 'stop_child; exit 130' INT TERM

# The report lines of a harness's output. With --nocapture a test's first line follows
# the harness's "test NAME ... " on the same line, so they are matched anywhere.
figures() {
    grep -oE '(crash|fuzz|load|soak): .*|row .*|[0-9]+ rows in .*|[0-9]+ reads and .*|[0-9]+ link attempts .*|tried: .*|test result: .*' "$1" || true
}

# Runs one harness (cargo test filters) in its own process group, keeps its output.
harness() {
    local name="$1"; shift
    printf '\n==> %s\n' "$name"
    setsid cargo test --test mount -- "$@" --nocapture --test-threads=1 >"$work/$name.log" 2>&1 &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    figures "$work/$name.log"
    if [ "$rc" -ne 0 ]; then
        failed+=("$name")
        echo "reliability.sh: $name FAILED (log kept in $work/$name.log)"
    fi
}

cargo build --tests --quiet
# What is measured, taken before the report itself changes the tree.
commit="$(git rev-parse --short HEAD)$(git diff --quiet -- . ':!docs/reliability-run.md' || echo ' (with local changes)')"
started=$SECONDS
harness crash crash::
harness fuzz fuzz::
harness hostile hostile::
harness fulldisk fulldisk::
harness security security::
harness load load::

{
    echo "# ctrfs reliability: the last run of scripts/reliability.sh"
    echo
    echo "Written by \`scripts/reliability.sh$($quick && echo ' --quick')\` on $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "at commit $commit,"
    echo "$(nproc) cores, $(uname -sr), debug build. Sizes: CTRFS_CRASH_ROUNDS=$CTRFS_CRASH_ROUNDS"
    echo "CTRFS_FUZZ_CASES=$CTRFS_FUZZ_CASES CTRFS_LOAD_SHELLS=$CTRFS_LOAD_SHELLS"
    echo "CTRFS_LOAD_SECS=$CTRFS_LOAD_SECS CTRFS_SOAK_CYCLES=$CTRFS_SOAK_CYCLES; $((SECONDS - started)) s in all."
    echo "What the lines mean, and what the harnesses found: docs/reliability.md."
    for name in crash fuzz hostile fulldisk security load; do
        echo
        echo "## $name"
        echo
        echo '```'
        figures "$work/$name.log"
        echo '```'
    done
    echo
    if [ "${#failed[@]}" -eq 0 ]; then echo "Every harness passed."; else echo "FAILED: ${failed[*]}"; fi
} >"$out"

echo
echo "reliability.sh: wrote $out"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "reliability.sh: FAILED: ${failed[*]}"
    exit 1
fi
rm -rf "$work"
echo "reliability.sh: every harness passed"
