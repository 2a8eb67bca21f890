#!/bin/bash
# make bench: berth and bale against runc, crun, umoci and skopeo, all in
# one run. Installs what is missing (Debian), builds the release binaries,
# then measures inside a private mount namespace where cgroup2's
# controllers file is covered by an empty file (crun refuses the host's
# hybrid layout; every runtime pays the same there). The host's mounts are
# never touched: the tmpfs and the cover exist only in that namespace.
#
#   bench/run.sh                  # everything (a few minutes)
#   BENCH_RUNS=50 bench/run.sh    # more runs; see bench/README.md
#   BENCH_ONLY=runtime bench/run.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PACKAGES=(runc crun busybox-static time umoci skopeo docker-registry binutils file)

install_missing() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}

[ "$(id -u)" = 0 ] || { echo "bench: must run as root (containers, mounts)" >&2; exit 2; }
# Bad BENCH_* settings fail here, before anything is installed or built.
python3 "$REPO/bench/bench.py" --check-settings
install_missing
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    # `make release`: the static-pie berth users install, and bale.
    make -C "$REPO" release >&2
fi

WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
# The tmpfs lives only in the child namespace; the host keeps an empty dir.
trap 'rmdir "$WORK" 2>/dev/null || true' EXIT

# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --propagation private -- bash -euc '
    work=$1; shift
    mount -t tmpfs -o mode=0700 berth-bench "$work"
    controllers=/sys/fs/cgroup/unified/cgroup.controllers
    if [ -e "$controllers" ]; then
        : >"$work/empty-controllers"
        mount --bind "$work/empty-controllers" "$controllers"
    fi
    mkdir "$work/w"
    exec python3 "$0" --workdir "$work/w" "$@"
' "$REPO/bench/bench.py" "$WORK" "$@"
