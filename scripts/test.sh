#!/usr/bin/env bash
# Runs every check of ctrfs: dependencies, the layering rule, `cargo test --all-targets`,
# clippy (when installed) and a check that no FUSE mount or daemon was left behind.
# Run as root from any directory. Exits non-zero if anything failed; the last line is the
# summary.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

started=$SECONDS
failures=()          # names of the checks that failed
steps=()             # "name result" pairs for the status line
child=""             # PID of the command running in its own process group, if any
test_tmp=""          # TMPDIR of the test run: every test's state dir and mountpoint
log=""

note() { printf 'test.sh: %s\n' "$*"; }
section() { printf '\n==> %s\n' "$*"; }
record() {  # record NAME RESULT ; RESULT is ok, FAILED or skipped
    steps+=("$1 $2")
    if [ "$2" = FAILED ]; then failures+=("$1"); fi
}

# Starts "$@" in a new session (its own process group) with output to the terminal and to
# $log, waits for it and returns its status. An interrupt stops exactly that group.
run_group() {
    # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
    setsid bash -c '"$@" 2>&1 | tee -a "$0"; exit "${PIPESTATUS[0]}"' "$log" "$@" &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    return "$rc"
}

stop_child() {
    if [ -n "$child" ]; then
        kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
        child=""
    fi
}

# Mount points of FUSE filesystems whose path starts with $1.
fuse_mounts_under() {
    awk -v p="$1" '$3 ~ /^fuse/ && index($2, p) == 1 { print $2 }' /proc/mounts
}

# Every mount point under $1 (FUSE, and the overlay or bind mounts of task root
# filesystems), deepest first so they can be detached in that order.
mounts_under() {
    awk -v p="$1" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r
}

# PIDs of processes whose command line mentions $1 (read with builtins only, so that no
# helper process of ours, carrying $1 in its own arguments, can match itself).
procs_mentioning() {
    local d arg args
    for d in /proc/[0-9]*; do
        args=()
        mapfile -d '' args 2>/dev/null <"$d/cmdline" || continue
        for arg in "${args[@]}"; do
            if [[ $arg == *"$1"* ]]; then echo "${d#/proc/}"; break; fi
        done
    done
}
indent() { sed 's/^/    /'; }

cleanup() {
    stop_child
    if [ -n "$test_tmp" ] && [ -d "$test_tmp" ]; then
        if [ -z "$(mounts_under "$test_tmp/")" ]; then
            rm -rf --one-file-system -- "$test_tmp"
        else
            note "leaving $test_tmp in place: a mount under it could not be removed"
        fi
    fi
}
trap cleanup EXIT
trap 'note "interrupted"; stop_child; exit 130' INT
trap 'note "terminated"; stop_child; exit 143' TERM

# ---------------------------------------------------------------------------------------
section "dependencies"
bash scripts/deps.sh
if ! command -v cargo >/dev/null 2>&1; then
    for d in "${CARGO_HOME:-}/bin" "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
        if [ -x "$d/cargo" ]; then PATH="$d:$PATH"; export PATH; break; fi
    done
fi
export RUST_BACKTRACE=1

# ---------------------------------------------------------------------------------------
section "layering (docs/design.md: who may import whom)"
layering_ok=1
check_empty() {  # check_empty RULE OUTPUT
    if [ -n "$2" ]; then
        note "layering violation: $1:"
        printf '%s\n' "$2" | indent
        layering_ok=0
    fi
}
# Code lines only: a path into a crate (`fuser::`, `use heed`), not prose in comments.
uses() {  # uses PATTERN: files under src/ whose non-comment lines match
    grep -rlE "^[^/]*($1)" src/ || true
}
check_empty "fuser outside src/fs/fuse.rs, src/fs/wait.rs and src/daemon.rs" \
    "$(uses '\bfuser::|use fuser' | grep -v -e src/fs/fuse.rs -e src/fs/wait.rs -e src/daemon.rs || true)"
check_empty "heed outside src/store/" \
    "$(uses '\bheed::|use heed' | grep -v '^src/store/' || true)"
check_empty "src/model/ uses another ctrfs module" \
    "$(grep -rlE '^[^/]*crate::(store|runtime|fs|content|snapshot)' src/model/ || true)"
check_empty "src/store/ uses fs, runtime, content or snapshot" \
    "$(grep -rlE '^[^/]*crate::(fs|runtime|content|snapshot)' src/store/ || true)"
check_empty "src/content/ or src/snapshot/ uses fs, store or runtime" \
    "$(grep -rlE '^[^/]*crate::(fs|store|runtime)|\bheed::|\bfuser::' src/content/ src/snapshot/ || true)"
check_empty "src/runtime/ uses fs or store" \
    "$(grep -rlE '^[^/]*crate::(fs|store|service)|\bheed::|\bfuser::' src/runtime/ || true)"
check_empty "src/service/ uses fs or fuser (services know no files)" \
    "$(grep -rlE '^[^/]*crate::(fs|daemon|cli)|\bfuser::' src/service/ || true)"
check_empty "src/fs/ writes the store itself (every change goes through src/service/)" \
    "$(grep -rlE '^[^/]*(store::Writer|\.write\(\|)' src/fs/ | grep -v -e _tests.rs -e /tests.rs || true)"
check_empty "model, store, content, snapshot or runtime use the service layer above them" \
    "$(grep -rlE '^[^/]*crate::service' src/model/ src/store/ src/content/ src/snapshot/ src/runtime/ || true)"
check_empty "src/daemon.rs uses the CLI (the CLI calls the daemon, not the other way)" \
    "$(grep -lE '^[^/]*crate::cli' src/daemon.rs || true)"
if [ "$layering_ok" = 1 ]; then note "layering ok"; record layering ok; else record layering FAILED; fi

# ---------------------------------------------------------------------------------------
section "cargo test --all-targets"
# Every temporary directory of the test run (state dirs, mountpoints) goes under one
# directory of ours, so that what the run left behind can be found afterwards.
test_tmp="$(mktemp -d /tmp/ctrfs-test.XXXXXX)"
# Other users may traverse it (not list it): the privacy tests run commands as uid 65534
# against fixtures below it, and must fail for the state directory's reasons, not this one's.
chmod 711 "$test_tmp"
log="$test_tmp/cargo-test.log"
: >"$log"
if TMPDIR="$test_tmp" run_group cargo test --all-targets --no-fail-fast; then
    record "cargo test" ok
else
    record "cargo test" FAILED
fi
# Count what the test binaries reported ("test result: ok. 3 passed; 0 failed; 1 ignored; ...").
read -r passed failed ignored < <(
    sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$log" |
        awk '{ p += $1; f += $2; i += $3 } END { print p + 0, f + 0, i + 0 }'
)

# ---------------------------------------------------------------------------------------
section "leftover mounts and daemons"
# The tests' fixtures unmount and stop their daemons on drop; give a slow exit a moment.
leftover_mounts="" leftover_procs=""
for _ in $(seq 50); do
    leftover_mounts="$(mounts_under "$test_tmp/")"
    leftover_procs="$(procs_mentioning "$test_tmp/")"
    [ -z "$leftover_mounts$leftover_procs" ] && break
    sleep 0.1
done
if [ -z "$leftover_mounts$leftover_procs" ]; then
    note "no mount (FUSE, overlay, bind) or daemon left under $test_tmp"
    record "no leftover mount" ok
else
    record "no leftover mount" FAILED
    if [ -n "$leftover_procs" ]; then
        note "processes left behind by the tests (their command line names $test_tmp):"
        for p in $leftover_procs; do
            printf '    %s %s\n' "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)"
        done
    fi
    if [ -n "$leftover_mounts" ]; then
        note "mounts left behind by the tests:"
        printf '%s\n' "$leftover_mounts" | indent
        # They are this run's own mounts: detach them so the machine stays usable.
        while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$leftover_mounts"
    fi
    # Their daemons usually exit once unmounted; stop the rest (this run started them).
    for p in $leftover_procs; do kill -TERM "$p" 2>/dev/null || true; done
fi
# Mounts elsewhere under /tmp are not ours to judge (another run may own them).
others="$(fuse_mounts_under /tmp/ | grep -vF -- "$test_tmp/" || true)"
if [ -n "$others" ]; then
    note "note: other FUSE mounts under /tmp (not from this run's TMPDIR):"
    printf '%s\n' "$others" | indent
fi

# ---------------------------------------------------------------------------------------
section "clippy"
if cargo clippy --version >/dev/null 2>&1; then
    if run_group cargo clippy --all-targets -- -D warnings; then
        record clippy ok
    else
        record clippy FAILED
    fi
else
    note "cargo clippy is not installed; skipping the lint step"
    record clippy skipped
fi

# ---------------------------------------------------------------------------------------
section "summary"
status=PASS
[ "${#failures[@]}" -eq 0 ] || status=FAIL
joined="$(printf '%s, ' "${steps[@]}")"
note "${joined%, } in $((SECONDS - started))s"
if [ "$status" = FAIL ]; then note "failed: ${failures[*]}"; fi
echo "$status: $passed passed, $failed failed, $ignored skipped"
[ "$status" = PASS ]
