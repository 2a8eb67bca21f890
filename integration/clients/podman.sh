# shellcheck shell=bash disable=SC2016
# podman 4.3 + conmon with berth as its runtime (containers.conf), cgroupfs,
# no network, all storage under the scratch dir. Sourced by run.sh.

PDM=$W/podman

podman_() {
    CONTAINERS_CONF=$PDM/containers.conf CONTAINERS_STORAGE_CONF=$PDM/storage.conf \
        timeout -k 5 90 podman "$@"
}

# The host's hard limits cap what a container may ask for (root lacks
# CAP_SYS_RESOURCE here): podman's defaults (nofile 1048576) exceed them.
podman_ulimits() {
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc=32768
    [ "$nproc" -gt 32768 ] && nproc=32768
    echo "\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\""
}

start_podman() {
    mkdir -p "$PDM/root" "$PDM/runroot" "$PDM/tmp"
    cat >"$PDM/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PDM/root"
runroot = "$PDM/runroot"
EOF
    cat >"$PDM/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = [ $(podman_ulimits) ]
log_driver = "k8s-file"

[engine]
runtime = "berth"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "berth"]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PDM/events.log"
tmp_dir = "$PDM/tmp"
static_dir = "$PDM/root/libpod"
volume_path = "$PDM/root/volumes"
no_pivot_root = false

[engine.runtimes]
berth = ["$BERTH"]
EOF
    STOP_FUNCS+=(stop_podman)
    podman_ load -q -i "$IMAGE_TAR" || return 1
    podman_ image exists "$IMAGE"
}

stop_podman() {
    podman_ rm -a -f -t 0 >/dev/null 2>&1
    podman_ rmi -a -f >/dev/null 2>&1
    # podman has no daemon; its storage mounts go with the scratch tmpfs.
    return 0
}

podman_id() { podman_ inspect -f '{{.Id}}' "$1"; }
podman_status() { podman_ inspect -f '{{.State.Status}}' "$1"; }
podman_cgroup() { echo "/sys/fs/cgroup/$1/libpod_parent/libpod-$2"; }

podman_run_rm() {
    run_ok "podman run --rm" podman_ run --rm "${SECURITY_OPTS[@]}" --cidfile "$W/p-rm.cid" "$IMAGE" \
        sh -c 'echo hi; cat /proc/self/limits | grep -i "open files"'
    local id
    id=$(cat "$W/p-rm.cid")
    expect_contains "output" hi "$OUT"
    expect_match "nofile limit" "Max open files +$(ulimit -Hn) +$(ulimit -Hn)" "$OUT"
    expect_called "$id" create
    expect_called "$id" start
    expect_nothing_left "$id"
    run_ok "podman run -i" podman_ run --rm -i "${SECURITY_OPTS[@]}" --cidfile "$W/p-stdin.cid" "$IMAGE" \
        sh -c 'read line; echo "got $line"' <<<"from stdin"
    expect_eq "stdin through podman" "got from stdin" "$OUT"
    expect_nothing_left "$(cat "$W/p-stdin.cid")"
}

podman_exit_code() {
    run_rc podman_ run --rm "${SECURITY_OPTS[@]}" --cidfile "$W/p-exit.cid" "$IMAGE" sh -c 'exit 6'
    expect_eq "exit code" 6 "$RC"
    expect_nothing_left "$(cat "$W/p-exit.cid")"
}

podman_run_tty() {
    pty_ok "podman run -t" env CONTAINERS_CONF="$PDM/containers.conf" CONTAINERS_STORAGE_CONF="$PDM/storage.conf" \
        podman run --rm -t "${SECURITY_OPTS[@]}" --cidfile "$W/p-tty.cid" "$IMAGE" tty
    expect_match "tty" '/dev/pts/[0-9]+' "$OUT"
    expect_nothing_left "$(cat "$W/p-tty.cid")"
}

# A detached container through its whole life.
podman_lifecycle() {
    local id cg pid1 pid2 mounts0
    mounts0=$(mount_count_under "$PDM")
    run_ok "podman run -d" podman_ run -d "${SECURITY_OPTS[@]}" --name p-bg "$IMAGE" \
        sh -c 'echo started; trap "exit 0" TERM; while true; do sleep 1; done'
    id=$(podman_id p-bg)
    expect_eq "status" running "$(podman_status p-bg)"

    run_ok "podman exec" podman_ exec p-bg sh -c 'echo $((6*7))'
    expect_eq "exec output" 42 "$OUT"
    run_ok "podman logs" podman_ logs p-bg
    expect_eq "podman logs" started "$OUT"
    run_ok "podman exec -u -w -e" podman_ exec -u 65534 -w /tmp -e GREETING=hello p-bg sh -c 'echo $(id -u) $PWD $GREETING'
    expect_eq "exec as another user, elsewhere, with env" "65534 /tmp hello" "$OUT"
    run_rc podman_ exec p-bg sh -c 'exit 3'
    expect_eq "exec exit code" 3 "$RC"
    expect_called "$id" exec --process
    pty_ok "podman exec -t" env CONTAINERS_CONF="$PDM/containers.conf" CONTAINERS_STORAGE_CONF="$PDM/storage.conf" \
        podman exec -t p-bg tty
    expect_match "exec -t tty" '/dev/pts/[0-9]+' "$OUT"

    run_ok "podman pause" podman_ pause p-bg
    expect_eq "status" paused "$(podman_status p-bg)"
    expect_eq "freezer" FROZEN "$(cat "$(podman_cgroup freezer "$id")/freezer.state")"
    run_ok "podman unpause" podman_ unpause p-bg
    expect_eq "status" running "$(podman_status p-bg)"
    expect_called "$id" pause
    expect_called "$id" resume

    cg=$(podman_cgroup memory "$id")
    [ -d "$cg" ] || fail "no memory cgroup at $cg"
    run_ok "podman update" podman_ update --memory 64m --memory-swap 128m p-bg
    expect_eq "memory.limit_in_bytes" 67108864 "$(cat "$cg/memory.limit_in_bytes")"
    expect_called "$id" update --resources=

    pid1=$(podman_ inspect -f '{{.State.Pid}}' p-bg)
    run_ok "podman stop" podman_ stop -t 5 p-bg
    expect_eq "status" exited "$(podman_status p-bg)"
    expect_eq "exit code (trap TERM -> exit 0)" 0 "$(podman_ inspect -f '{{.State.ExitCode}}' p-bg)"
    expect_called "$id" kill
    run_ok "podman start" podman_ start p-bg
    expect_eq "status" running "$(podman_status p-bg)"
    run_ok "podman restart" podman_ restart -t 5 p-bg
    expect_eq "status" running "$(podman_status p-bg)"
    pid2=$(podman_ inspect -f '{{.State.Pid}}' p-bg)
    [ "$pid1" != "$pid2" ] || fail "restart kept pid $pid1"
    run_ok "podman exec after restart" podman_ exec p-bg echo again
    expect_eq "exec after restart" again "$OUT"

    run_ok "podman rm -f" podman_ rm -f -t 2 p-bg
    expect_nothing_left "$id"
    expect_mounts_back "$PDM" "$mounts0"
}

# Limits reach the cgroups; a read-only root keeps podman's tmpfs (tmpcopyup) writable.
podman_limits_readonly() {
    local id
    run_ok "podman run -d with limits" podman_ run -d "${SECURITY_OPTS[@]}" --memory 64m --pids-limit 50 \
        --cap-add NET_ADMIN --read-only --name p-lim "$IMAGE" sleep 1000
    id=$(podman_id p-lim)
    expect_eq "memory.limit_in_bytes" 67108864 "$(cat "$(podman_cgroup memory "$id")/memory.limit_in_bytes")"
    expect_eq "pids.max" 50 "$(cat "$(podman_cgroup pids "$id")/pids.max")"
    run_rc podman_ exec p-lim touch /not-writable
    [ "$RC" -ne 0 ] || fail "the read-only root was writable"
    run_ok "write to /tmp" podman_ exec p-lim sh -c 'echo x > /tmp/ok && cat /tmp/ok'
    expect_eq "/tmp on a read-only root" x "$OUT"
    run_ok "podman exec" podman_ exec p-lim grep CapEff /proc/self/status
    # CAP_NET_ADMIN is bit 12.
    (( (0x${OUT##*:[[:space:]]} >> 12) & 1 )) || fail "no CAP_NET_ADMIN in $OUT"
    run_ok "podman rm -f" podman_ rm -f -t 0 p-lim
    expect_nothing_left "$id"
}

podman_create_error() {
    expect_failure "podman run of a missing binary" podman_ run --rm "${SECURITY_OPTS[@]}" \
        --cidfile "$W/p-err.cid" "$IMAGE" /no/such/binary
    local id
    id=$(cat "$W/p-err.cid")
    expect_berth_error_shown "$id" "$OUT"
    podman_ rm -f "$id" >/dev/null 2>&1 || true
    expect_nothing_left "$id"
}

podman_default_seccomp() {
    run_ok "podman run (default seccomp profile)" podman_ run --rm "$IMAGE" sh -c 'grep Seccomp: /proc/self/status'
    expect_contains "seccomp mode" "Seccomp:	2" "$OUT"
}

scenarios_podman() {
    scenario podman/run-rm podman_run_rm
    scenario podman/exit-code podman_exit_code
    scenario podman/run-tty podman_run_tty
    scenario podman/lifecycle podman_lifecycle
    scenario podman/limits-readonly podman_limits_readonly
    scenario podman/create-error podman_create_error
    if [ "$SECCOMP" = true ]; then
        scenario podman/default-seccomp podman_default_seccomp
    else
        skip podman/default-seccomp "berth features: linux.seccomp.enabled is false"
    fi
}
