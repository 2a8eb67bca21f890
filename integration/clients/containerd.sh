# shellcheck shell=bash disable=SC2016
# containerd 1.6 with the runc shim v2, driven through ctr, berth given as
# the shim's runc binary. Sourced by run.sh (uses lib.sh).

CTRD=$W/containerd
# Unique per run: the shims share /run/containerd/runc/NS between daemons.
CTR_NS=berth-clients-$$

ctr_() { timeout -k 5 60 ctr --address "$CTRD/containerd.sock" --namespace "$CTR_NS" "$@"; }

start_containerd() {
    mkdir -p "$CTRD/root" "$CTRD/state"
    cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD/containerd.sock"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[debug]
  address = "$CTRD/debug.sock"
EOF
    containerd --config "$CTRD/config.toml" >"$W/logs/containerd.log" 2>&1 &
    echo $! >"$CTRD/pid"
    STOP_FUNCS+=(stop_containerd)
    FINAL_FUNCS+=(remove_containerd_leftovers)
    wait_until 30 ctr --address "$CTRD/containerd.sock" version || return 1
    ctr_ images import "$IMAGE_TAR" || return 1
    ctr_ images ls -q | grep -qx "$IMAGE"
}

stop_containerd() {
    local id
    # Tasks and containers a failed scenario left, then the daemon.
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id"; done
    for id in $(ctr_ containers ls -q 2>/dev/null); do
        ctr_ tasks delete -f "$id"
        ctr_ containers delete "$id"
    done
    ctr_ images rm "$IMAGE" >/dev/null 2>&1
    if [ -s "$CTRD/pid" ]; then
        kill -TERM "$(cat "$CTRD/pid")" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$(cat "$CTRD/pid")" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$(cat "$CTRD/pid")" 2>/dev/null
    fi
    return 0
}

# What the shims keep outside the daemon's dirs, once berth deleted all.
remove_containerd_leftovers() {
    rm -rf "/run/containerd/runc/$CTR_NS" "/run/containerd/io.containerd.runtime.v2.task/$CTR_NS"
    find /sys/fs/cgroup -depth -type d -path "*/$CTR_NS*" -exec rmdir {} \;
    return 0
}

# Cgroup of a ctr container: /NAMESPACE/ID under each v1 controller.
ctr_cgroup() { echo "/sys/fs/cgroup/$1/$CTR_NS/$2"; }

ctr_task_status() { ctr_ tasks ls | awk -v id="$1" '$1 == id { print $3 }'; }

ctr_remove() {
    ctr_ tasks delete "$1" >/dev/null 2>&1 || true
    ctr_ containers delete "$1"
}

# ctr run --rm: output, exit code, nothing left.
ctr_run_rm() {
    run_ok "ctr run --rm" ctr_ run --rm --runc-binary "$BERTH" "$IMAGE" c-rm echo hi
    expect_eq "output" "hi" "$OUT"
    expect_called c-rm create
    expect_called c-rm start
    expect_called c-rm delete
    expect_nothing_left c-rm
    run_ok "ctr run with stdin" ctr_ run --rm --runc-binary "$BERTH" "$IMAGE" c-stdin \
        sh -c 'read line; echo "got $line"' <<<"from stdin"
    expect_eq "stdin through ctr" "got from stdin" "$OUT"
    expect_nothing_left c-stdin
}

ctr_exit_code() {
    run_rc ctr_ run --rm --runc-binary "$BERTH" "$IMAGE" c-exit sh -c 'echo out; exit 7'
    expect_eq "exit code" 7 "$RC"
    expect_eq "output" "out" "$OUT"
    expect_nothing_left c-exit
}

ctr_run_tty() {
    pty_ok "ctr run -t" ctr --address "$CTRD/containerd.sock" --namespace "$CTR_NS" run --rm -t \
        --runc-binary "$BERTH" "$IMAGE" c-tty tty
    expect_match "tty" '/dev/pts/[0-9]+' "$OUT"
    expect_called c-tty create --console-socket
    expect_nothing_left c-tty
}

# A detached container: exec with and without a tty, ps, pause,
# resume, kill, delete.
ctr_detached() {
    local id=c-bg pids
    # PID 1 ignores signals it has no handler for: TERM gets one.
    run_ok "ctr run -d" ctr_ run -d --runc-binary "$BERTH" "$IMAGE" $id \
        sh -c 'trap "exit 0" TERM; while true; do sleep 1; done' 
    wait_for 10 "task running" sh -c "[ \"\$(ctr --address $CTRD/containerd.sock -n $CTR_NS tasks ls | awk '\$1==\"$id\"{print \$3}')\" = RUNNING ]"

    run_ok "ctr task exec" ctr_ tasks exec --exec-id e1 $id sh -c 'echo $((6*7)); echo err >&2; exit 0'
    expect_contains "exec output" 42 "$OUT"
    expect_called $id exec --process
    run_rc ctr_ tasks exec --exec-id e2 $id sh -c 'exit 5'
    expect_eq "exec exit code" 5 "$RC"
    pty_ok "ctr task exec -t" ctr --address "$CTRD/containerd.sock" --namespace "$CTR_NS" \
        tasks exec -t --exec-id e3 $id sh -c "tty; sleep 1"
    expect_match "exec -t tty" '/dev/pts/[0-9]+' "$OUT"

    run_ok "ctr task ps" ctr_ tasks ps $id
    pids=$(echo "$OUT" | awk 'NR > 1 { print $1 }')
    [ -n "$pids" ] || fail "ctr task ps listed no process: $OUT"
    expect_called $id ps

    # ctr 1.6 has no `task update`: containerd's `update --resources -`
    # is driven through dockerd (docker update), which uses the same shim.
    run_ok "ctr task pause" ctr_ tasks pause $id
    expect_eq "status after pause" PAUSED "$(ctr_task_status $id)"
    expect_eq "freezer state" FROZEN "$(cat "$(ctr_cgroup freezer $id)/freezer.state")"
    expect_called $id pause
    run_ok "ctr task resume" ctr_ tasks resume $id
    expect_eq "status after resume" RUNNING "$(ctr_task_status $id)"
    expect_eq "freezer state" THAWED "$(cat "$(ctr_cgroup freezer $id)/freezer.state")"

    run_ok "ctr task kill (TERM)" ctr_ tasks kill $id
    wait_for 10 "task stopped" sh -c "[ \"\$(ctr --address $CTRD/containerd.sock -n $CTR_NS tasks ls | awk '\$1==\"$id\"{print \$3}')\" = STOPPED ]"
    expect_called $id kill
    run_ok "ctr task delete" ctr_ tasks delete $id
    run_ok "ctr container delete" ctr_ containers delete $id
    expect_nothing_left $id
}

# kill --all reaches every process of the container, not just its init.
ctr_kill_all() {
    local id=c-all
    run_ok "ctr run -d" ctr_ run -d --runc-binary "$BERTH" "$IMAGE" $id \
        sh -c 'trap "" TERM; sleep 1000 & sleep 1000 & wait'
    wait_for 10 "three processes" sh -c "[ \$(wc -l < $(ctr_cgroup pids $id)/cgroup.procs) -ge 3 ]"
    run_ok "ctr task kill --all" ctr_ tasks kill --all -s SIGKILL $id
    wait_for 10 "task stopped" sh -c "[ \"\$(ctr --address $CTRD/containerd.sock -n $CTR_NS tasks ls | awk '\$1==\"$id\"{print \$3}')\" = STOPPED ]"
    expect_called $id kill --all
    ctr_remove $id
    expect_nothing_left $id
}

# A create that fails shows berth's own message through ctr.
ctr_create_error() {
    expect_failure "ctr run of a missing binary" ctr_ run --rm --runc-binary "$BERTH" "$IMAGE" c-err /no/such/binary
    expect_contains "ctr's error" "/no/such/binary" "$OUT"
    expect_berth_error_shown c-err "$OUT"
    ctr_remove c-err >/dev/null 2>&1 || true
    expect_nothing_left c-err
}

scenarios_containerd() {
    scenario containerd/run-rm ctr_run_rm
    scenario containerd/exit-code ctr_exit_code
    scenario containerd/run-tty ctr_run_tty
    scenario containerd/detached-exec-ps-pause-kill ctr_detached
    scenario containerd/kill-all ctr_kill_all
    scenario containerd/create-error ctr_create_error
}
