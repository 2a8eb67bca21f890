# shellcheck shell=bash disable=SC2016,SC2034
# (SC2016: single-quoted $ is for the container's shell; SC2034: globals
# such as OUT and RC are read by the engine files.)
# Helpers shared by the client suite: checks, waiting, leftover detection,
# the scenario runner and the berth call log. Sourced by run.sh.
#
# Globals set by run.sh before this is used:
#   W         scratch directory (a private tmpfs) holding everything
#   CALLS     the log written by the berth wrapper (one line per call)
#   RESULTS   per-scenario result lines (name, verdict)

# --- failing and checking ------------------------------------------------

# Ends the current scenario (a subshell) with a message.
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() { echo "   $*"; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}

# expect_match WHAT EXTENDED-REGEX ACTUAL
expect_match() {
    [[ $3 =~ $2 ]] || fail "$1: '$3' does not match /$2/"
}

# expect_contains WHAT NEEDLE HAYSTACK
expect_contains() {
    case $3 in
    *"$2"*) ;;
    *) fail "$1: '$2' not in: $(printf '%s' "$3" | head -c 600)" ;;
    esac
}

# Runs a command that must fail; its stdout+stderr go to the variable OUT.
# expect_failure WHAT CMD...
expect_failure() {
    local what=$1
    shift
    if OUT=$("$@" 2>&1); then
        fail "$what: succeeded, output: $OUT"
    fi
    note "$what failed as expected: $(printf '%s' "$OUT" | tr '\n' ' ' | head -c 400)"
}

# Runs a command and fails the scenario if it fails.
# run_ok WHAT CMD...   (its output goes to the variable OUT)
# (engine wrappers such as ctr_ carry their own deadline).
run_ok() {
    local what=$1 rc=0
    shift
    OUT=$("$@" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || fail "$what: exit $rc: $(printf '%s' "$OUT" | head -c 1500)"
}

# Runs a command; its exit code goes to RC, output to OUT.
run_rc() {
    RC=0
    OUT=$("$@" 2>&1) || RC=$?
}

# Polls a command until it succeeds (0) or SECONDS pass (1).
# wait_until SECONDS CMD...
wait_until() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# wait_for SECONDS WHAT CMD...: wait_until, or fail the scenario.
wait_for() {
    local secs=$1 what=$2
    shift 2
    wait_until "$secs" "$@" || fail "timed out after ${secs}s waiting for: $what"
}

# Runs a command under a pseudo-terminal (engines refuse -t without one);
# its output goes to OUT. `script -e` passes the child's exit code back.
# pty_ok WHAT CMD...
pty_ok() {
    local what=$1 cmd rc=0
    shift
    printf -v cmd '%q ' "$@"
    OUT=$(timeout -k 5 30 script -qefc "$cmd" /dev/null </dev/null 2>&1) || rc=$?
    [ "$rc" -ne 124 ] || fail "$what: hung (killed after 30s), output: $OUT"
    [ "$rc" -eq 0 ] || fail "$what: exit $rc: $OUT"
}

# --- the berth call log --------------------------------------------------

# Lines of the call log naming a container id (or any pattern).
calls_for() { grep -F -e "$1" "$CALLS" 2>/dev/null | grep -E '^[0-9.]+ call ' || true; }

# Lines of the call log with berth's exit code for a container: "T exit=N ARGS".
exits_for() { grep -F -e "$1" "$CALLS" 2>/dev/null | grep -E '^[0-9.]+ exit=' || true; }

# The berth subcommand names called for a container, in order, deduplicated
# by first appearance, e.g. "create start exec kill delete".
commands_for() {
    calls_for "$1" | awk '{ for (i = 3; i <= NF; i++) if ($i !~ /^-/ && $(i-1) !~ /^--(root|log|log-format)$/) { print $i; break } }' |
        awk '!seen[$0]++' | tr '\n' ' '
}

# expect_called ID SUBCOMMAND [EXTRA-FLAG]: the engine ran berth that way.
expect_called() {
    local line
    line=$(calls_for "$1" | grep -E -- " $2( |$)" | grep -F -e "${3:-$2}" | head -1)
    [ -n "$line" ] || fail "the engine never called 'berth $2 ${3:-}' for $1 (calls: $(commands_for "$1"))"
}

# The message of berth's last error log line (--log-format json) for a
# container, as the wrapper kept it.
berth_error_for() {
    grep -F -e "$1 " "$ERRORS" 2>/dev/null | tail -1 | cut -d' ' -f2- | jq -r '.msg // empty' 2>/dev/null
}

# expect_berth_error_shown ID ENGINE-OUTPUT: berth failed for ID with a json
# error line, and the engine showed its message to the user.
expect_berth_error_shown() {
    local msg
    msg=$(berth_error_for "$1")
    [ -n "$msg" ] || fail "no json error line from berth for $1 (errors: $(head -c 400 "$ERRORS" 2>/dev/null))"
    note "berth said: $msg"
    expect_contains "the engine's error shows berth's" "$msg" "$2"
}

# Every container id berth was asked to create (the last argument).
container_ids_created() {
    grep -E '^[0-9.]+ call .* create ' "$CALLS" 2>/dev/null | awk '{ print $NF }' | sort -u
}

# The bundle directory berth was given for a container.
bundle_for() {
    calls_for "$1" | grep -E ' create ' | head -1 | sed -n 's/.* --bundle[= ]\([^ ]*\).*/\1/p'
}

# The --root berth was given for a container (from its create call), or
# berth's default when the engine gave none (podman does not).
state_root_for() {
    local root
    root=$(calls_for "$1" | grep -E ' create ' | head -1 | sed -n 's/.* --root[= ]\([^ ]*\).*/\1/p')
    echo "${root:-/run/berth}"
}

# --- leftovers ------------------------------------------------------------

cgroup_dirs_for() { find /sys/fs/cgroup -maxdepth 5 -type d -name "*$1*" 2>/dev/null || true; }
mounts_for() { grep -F -e "$1" /proc/self/mountinfo 2>/dev/null || true; }
processes_for() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -e "$1" && echo "${p#/proc/}: $(tr '\0' ' ' 2>/dev/null <"$p/cmdline")"
    done
    return 0
}

leftovers_for() {
    local id=$1 root
    root=$(state_root_for "$id")
    [ -e "$root/$id" ] && echo "berth state dir $root/$id"
    cgroup_dirs_for "$id" | sed 's/^/cgroup /'
    mounts_for "$id" | awk '{ print "mount " $5 }'
    processes_for "$id" | sed 's/^/process /'
    return 0
}

# expect_nothing_left ID: no state dir, cgroup, mount or process names the id.
# Engines clean up asynchronously (shims, conmon), so this waits a little.
expect_nothing_left() {
    local id=$1 left i
    [ -n "$(calls_for "$id")" ] || fail "berth was never called for $id: is the engine using berth?"
    for ((i = 0; i < 100; i++)); do
        left=$(leftovers_for "$id")
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    fail "left behind for $id: $(echo "$left" | head -20)"
}

# Mounts below a directory: compared before and after a scenario because
# some engines (docker's overlay2) mount rootfs under ids unrelated to ours.
# The storage driver's own bind mount of its home (podman's overlay dir,
# made once and kept) is not a container's.
under_dir() { awk -v d="$1/" 'index($5, d) == 1 && $5 !~ /\/overlay2?$/ { print $5 }' /proc/self/mountinfo; }
mount_count_under() { under_dir "$1" | wc -l; }

# expect_mounts_back DIR COUNT: the mounts under DIR are back to COUNT.
expect_mounts_back() {
    wait_until 10 test "$(mount_count_under "$1")" -eq "$2" ||
        fail "mounts under $1: $2 before, now: $(under_dir "$1" | head -5)"
}

# --- the scenario runner --------------------------------------------------

PASSED=0
FAILED=0
SKIPPED=0

# scenario NAME FUNCTION [ARGS...]: runs the function in a subshell with
# errexit on, its output in $W/logs/NAME.log, and records the verdict.
scenario() {
    local name=$1 rc=0 start log
    shift
    log=$W/logs/${name//\//-}.log
    start=$(date +%s)
    printf '%-40s ' "$name"
    echo "### $name" >>"$CALLS"
    # Not in a conditional: errexit must stay in force inside the subshell.
    set +e
    (
        set -eEuo pipefail
        trap 'echo "FAIL: exit $? from: $BASH_COMMAND (${BASH_SOURCE[0]##*/}:$LINENO)" >&2' ERR
        "$@"
    ) >"$log" 2>&1
    rc=$?
    if is_expected_failure "$name"; then
        # A known berth bug, named in CLIENTS_XFAIL: reported, not counted
        # as a failure, and flagged the day it passes.
        if [ "$rc" -eq 0 ]; then
            FAILED=$((FAILED + 1))
            echo "PASSED, but listed in CLIENTS_XFAIL: remove it from there"
            echo "FAILED $name (unexpected pass)" >>"$RESULTS"
        else
            SKIPPED=$((SKIPPED + 1))
            echo "expected failure ($(($(date +%s) - start))s): $(grep -m1 '^FAIL' "$log" | cut -c1-160)"
            echo "xfail $name" >>"$RESULTS"
        fi
    elif [ "$rc" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        echo "ok ($(($(date +%s) - start))s)"
        echo "ok $name" >>"$RESULTS"
    else
        FAILED=$((FAILED + 1))
        echo "FAILED ($(($(date +%s) - start))s)"
        echo "FAILED $name" >>"$RESULTS"
        sed 's/^/    | /' "$log" | tail -25
        echo "    | berth calls:"
        awk -v m="### $name" 'on; $0 == m { on = 1 }' "$CALLS" | sed 's/^/    | /' | tail -15
    fi
}

# CLIENTS_XFAIL: space-separated scenario names known to fail.
is_expected_failure() {
    case " ${CLIENTS_XFAIL:-} " in *" $1 "*) return 0 ;; esac
    return 1
}

# skip NAME REASON: a scenario that cannot run here, counted apart.
skip() {
    SKIPPED=$((SKIPPED + 1))
    printf '%-40s skipped: %s\n' "$1" "$2"
    echo "skipped $1 ($2)" >>"$RESULTS"
}
