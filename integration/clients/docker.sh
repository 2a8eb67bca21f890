# shellcheck shell=bash disable=SC2016
# dockerd 20.10 (Debian's docker.io) with its own containerd, berth added as
# runtime "berth", no iptables, no bridge. Sourced by run.sh (uses lib.sh).
# Debian's own client is used (/usr/bin/docker), not any other on PATH.

DKR=$W/docker
DOCKER_CLI=/usr/bin/docker

docker_() { timeout -k 5 90 "$DOCKER_CLI" -H "unix://$DKR/docker.sock" "$@"; }

start_docker() {
    mkdir -p "$DKR/data" "$DKR/exec"
    cat >"$DKR/daemon.json" <<EOF
{
  "runtimes": { "berth": { "path": "$BERTH" } },
  "iptables": false,
  "ip6tables": false,
  "bridge": "none",
  "ip-forward": false,
  "ip-masq": false,
  "userland-proxy": false,
  "storage-driver": "overlay2",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "log-driver": "json-file",
  "features": { "buildkit": false }
}
EOF
    dockerd --config-file "$DKR/daemon.json" --data-root "$DKR/data" --exec-root "$DKR/exec" \
        --pidfile "$DKR/docker.pid" -H "unix://$DKR/docker.sock" >"$W/logs/dockerd.log" 2>&1 &
    echo $! >"$DKR/pid"
    STOP_FUNCS+=(stop_docker)
    wait_until 60 "$DOCKER_CLI" -H "unix://$DKR/docker.sock" version || return 1
    docker_ load -i "$IMAGE_TAR" || return 1
    docker_ image inspect "$IMAGE" >/dev/null
}

stop_docker() {
    local ids
    mapfile -t ids < <(docker_ ps -aq 2>/dev/null)
    [ ${#ids[@]} -gt 0 ] && docker_ rm -f "${ids[@]}"
    if [ -s "$DKR/pid" ]; then
        kill -TERM "$(cat "$DKR/pid")" 2>/dev/null
        # dockerd stops its own containerd before it exits.
        for _ in $(seq 150); do kill -0 "$(cat "$DKR/pid")" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$(cat "$DKR/pid")" 2>/dev/null
    fi
    return 0
}

docker_id() { docker_ inspect -f '{{.Id}}' "$1"; }
docker_status() { docker_ inspect -f '{{.State.Status}}' "$1"; }
docker_cgroup() { echo "/sys/fs/cgroup/$1/docker/$2"; }

docker_run_rm() {
    local lines id
    run_ok "docker run --rm" docker_ run --rm --runtime berth --network none "${SECURITY_OPTS[@]}" \
        --cidfile "$W/d-rm.cid" "$IMAGE" sh -c 'echo hi; hostname'
    mapfile -t lines <<<"$OUT"
    expect_eq "output" hi "${lines[0]}"
    id=$(cat "$W/d-rm.cid")
    expect_eq "hostname" "${id:0:12}" "${lines[1]:-}"
    expect_nothing_left "$id"
    run_ok "docker run -i" docker_ run --rm -i --runtime berth --network none "${SECURITY_OPTS[@]}" \
        --cidfile "$W/d-stdin.cid" "$IMAGE" sh -c 'read line; echo "got $line"' <<<"from stdin"
    expect_eq "stdin through docker" "got from stdin" "$OUT"
    id=$(cat "$W/d-stdin.cid")
    expect_called "$id" start
    expect_called "$id" delete
    expect_nothing_left "$id"
}

docker_exit_code() {
    run_rc docker_ run --rm --runtime berth --network none "${SECURITY_OPTS[@]}" --cidfile "$W/d-exit.cid" \
        "$IMAGE" sh -c 'exit 9'
    expect_eq "exit code" 9 "$RC"
    expect_nothing_left "$(cat "$W/d-exit.cid")"
}

docker_run_tty() {
    pty_ok "docker run -t" "$DOCKER_CLI" -H "unix://$DKR/docker.sock" run --rm -t --runtime berth --network none \
        "${SECURITY_OPTS[@]}" --cidfile "$W/d-tty.cid" "$IMAGE" tty
    expect_match "tty" '/dev/pts/[0-9]+' "$OUT"
    expect_nothing_left "$(cat "$W/d-tty.cid")"
}

# --network host shares the host's interfaces, none gives only lo.
docker_networks() {
    local hostif
    run_ok "docker run --network host" docker_ run --rm --runtime berth --network host "${SECURITY_OPTS[@]}" \
        --cidfile "$W/d-host.cid" "$IMAGE" sh -c 'ls /sys/class/net | sort | tr "\n" " "'
    hostif=$(find /sys/class/net -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')
    expect_eq "interfaces with --network host" "$hostif" "$OUT"
    expect_nothing_left "$(cat "$W/d-host.cid")"
    run_ok "docker run --network none" docker_ run --rm --runtime berth --network none "${SECURITY_OPTS[@]}" \
        --cidfile "$W/d-none.cid" "$IMAGE" sh -c 'ls /sys/class/net | tr "\n" " "'
    expect_eq "interfaces with --network none" "lo " "$OUT"
    expect_nothing_left "$(cat "$W/d-none.cid")"
}

# The prestart hook dockerd adds to containers with a network namespace of
# its own: it must run, or dockerd fails the start.
docker_setkey_hook() {
    local id
    run_ok "docker create" docker_ create --runtime berth "${SECURITY_OPTS[@]}" --network none --name d-hook "$IMAGE" sleep 1000
    id=$(docker_id d-hook)
    run_ok "docker start" docker_ start d-hook
    expect_contains "prestart hook in the spec" libnetwork-setkey \
        "$(jq -c .hooks.prestart "$(bundle_for "$id")/config.json")"
    expect_eq "status" running "$(docker_status d-hook)"
    # The hook told dockerd the container's netns: its sandbox key is it.
    local key pid
    key=$(docker_ inspect -f '{{.NetworkSettings.SandboxKey}}' d-hook)
    pid=$(docker_ inspect -f '{{.State.Pid}}' d-hook)
    [ -n "$key" ] || fail "no sandbox key: the libnetwork-setkey hook did not run"
    expect_eq "sandbox key is the container's netns" "$(readlink "/proc/$pid/ns/net")" "net:[$(stat -L -c %i "$key")]"
    docker_ rm -f d-hook >/dev/null
    expect_nothing_left "$id"
}

# A long-running container through its whole life.
docker_lifecycle() {
    local id cg pid1 pid2 mounts0
    mounts0=$(mount_count_under "$DKR")
    run_ok "docker run -d" docker_ run -d --runtime berth --network none "${SECURITY_OPTS[@]}" --name d-bg "$IMAGE" \
        sh -c 'echo started; trap "exit 0" TERM; while true; do sleep 1; done'
    id=$(docker_id d-bg)
    expect_eq "status" running "$(docker_status d-bg)"
    expect_called "$id" create
    expect_called "$id" start

    run_ok "docker exec" docker_ exec d-bg sh -c 'echo $((6*7))'
    expect_eq "exec output" 42 "$OUT"
    run_ok "docker logs" docker_ logs d-bg
    expect_eq "docker logs" started "$OUT"
    run_ok "docker exec -u -w -e" docker_ exec -u 65534 -w /tmp -e GREETING=hello d-bg sh -c 'echo $(id -u) $PWD $GREETING'
    expect_eq "exec as another user, elsewhere, with env" "65534 /tmp hello" "$OUT"
    run_rc docker_ exec d-bg sh -c 'exit 4'
    expect_eq "exec exit code" 4 "$RC"
    expect_called "$id" exec --process
    pty_ok "docker exec -t" "$DOCKER_CLI" -H "unix://$DKR/docker.sock" exec -t d-bg tty
    expect_match "exec -t tty" '/dev/pts/[0-9]+' "$OUT"

    run_ok "docker top" docker_ top d-bg
    expect_contains "top" "while true" "$OUT"

    cg=$(docker_cgroup memory "$id")
    [ -d "$cg" ] || fail "no memory cgroup at $cg"
    run_ok "docker update --memory" docker_ update --memory 64m --memory-swap 128m d-bg
    expect_eq "memory.limit_in_bytes" 67108864 "$(cat "$cg/memory.limit_in_bytes")"
    expect_called "$id" update "--resources -"

    run_ok "docker stats" docker_ stats --no-stream --format '{{.Name}} {{.MemUsage}}' d-bg
    expect_match "stats" '^d-bg [0-9.]+[KMG]i?B / 64MiB' "$OUT"

    run_ok "docker pause" docker_ pause d-bg
    expect_eq "status" paused "$(docker_status d-bg)"
    expect_eq "freezer" FROZEN "$(cat "$(docker_cgroup freezer "$id")/freezer.state")"
    run_ok "docker unpause" docker_ unpause d-bg
    expect_eq "status" running "$(docker_status d-bg)"
    expect_called "$id" pause
    expect_called "$id" resume

    pid1=$(docker_ inspect -f '{{.State.Pid}}' d-bg)
    run_ok "docker stop" docker_ stop -t 5 d-bg
    expect_eq "status" exited "$(docker_status d-bg)"
    expect_eq "exit code (trap TERM -> exit 0)" 0 "$(docker_ inspect -f '{{.State.ExitCode}}' d-bg)"
    run_ok "docker restart" docker_ restart -t 5 d-bg
    expect_eq "status" running "$(docker_status d-bg)"
    pid2=$(docker_ inspect -f '{{.State.Pid}}' d-bg)
    [ "$pid1" != "$pid2" ] || fail "restart kept pid $pid1"
    run_ok "docker exec after restart" docker_ exec d-bg echo again
    expect_eq "exec after restart" again "$OUT"

    run_ok "docker rm -f" docker_ rm -f d-bg
    expect_nothing_left "$id"
    expect_mounts_back "$DKR" "$mounts0"
}

# Resource limits and no-new-privileges reach the container's cgroups.
docker_limits() {
    local id
    run_ok "docker run -d with limits" docker_ run -d --runtime berth --network none "${SECURITY_OPTS[@]}" \
        --memory 64m --cpus 0.5 --pids-limit 50 --security-opt no-new-privileges --name d-lim "$IMAGE" sleep 1000
    id=$(docker_id d-lim)
    expect_eq "memory.limit_in_bytes" 67108864 "$(cat "$(docker_cgroup memory "$id")/memory.limit_in_bytes")"
    expect_eq "pids.max" 50 "$(cat "$(docker_cgroup pids "$id")/pids.max")"
    expect_eq "cpu.cfs_quota_us" 50000 "$(cat "$(docker_cgroup cpu "$id")/cpu.cfs_quota_us")"
    run_ok "docker exec" docker_ exec d-lim grep NoNewPrivs /proc/self/status
    expect_match "no_new_privs" 'NoNewPrivs:[[:space:]]+1' "$OUT"
    run_ok "docker rm -f" docker_ rm -f d-lim
    expect_nothing_left "$id"
}

docker_create_error() {
    expect_failure "docker run of a missing binary" docker_ run --rm --runtime berth --network none \
        "${SECURITY_OPTS[@]}" --cidfile "$W/d-err.cid" "$IMAGE" /no/such/binary
    expect_contains "docker's error" "/no/such/binary" "$OUT"
    local id
    id=$(cat "$W/d-err.cid")
    expect_eq "berth's exit code" 1 "$(exits_for "$id" | grep -E ' create ' | sed -E 's/^[0-9.]+ exit=([0-9]+).*/\1/')"
    expect_berth_error_shown "$id" "$OUT"
    docker_ rm -f "$id" >/dev/null 2>&1 || true
    expect_nothing_left "$id"
}

docker_default_seccomp() {
    run_ok "docker run (default seccomp profile)" docker_ run --rm --runtime berth --network none "$IMAGE" \
        sh -c 'grep Seccomp: /proc/self/status'
    expect_contains "seccomp mode" "Seccomp:	2" "$OUT"
}

scenarios_docker() {
    scenario docker/run-rm docker_run_rm
    scenario docker/exit-code docker_exit_code
    scenario docker/run-tty docker_run_tty
    scenario docker/networks docker_networks
    scenario docker/setkey-hook docker_setkey_hook
    scenario docker/lifecycle docker_lifecycle
    scenario docker/limits docker_limits
    scenario docker/create-error docker_create_error
    if [ "$SECCOMP" = true ]; then
        scenario docker/default-seccomp docker_default_seccomp
    else
        skip docker/default-seccomp "berth features: linux.seccomp.enabled is false"
    fi
}
