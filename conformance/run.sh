#!/usr/bin/env bash
# Runs the OCI runtime-spec conformance suite against one runtime.
#
#   conformance/run.sh [--runtime PATH] [runner options...]
#
# Without --runtime (or $RUNTIME) it builds berth and tests target/debug/berth. Builds the runner
# and the static checker (in its own target dir, so the workspace build is not invalidated),
# then prints TAP, a per-section table and `conformance: N passed, N failed, N skipped`.
# Exits non-zero when a test failed. Needs root and busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cargo=${CARGO:-cargo}

runtime=${RUNTIME:-}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "conformance/run.sh: must run as root (real containers)" >&2
  exit 2
fi
if ! /bin/busybox --list >/dev/null 2>&1; then
  echo "conformance/run.sh: /bin/busybox missing: apt-get install -y busybox-static" >&2
  exit 2
fi

if [ -z "$runtime" ]; then
  "$cargo" build -q -p berth --bin berth
  runtime=$repo/target/debug/berth
fi
if [ ! -x "$runtime" ]; then
  echo "conformance/run.sh: runtime $runtime is not an executable file" >&2
  exit 2
fi

"$cargo" build -q -p berth-conformance --bin berth-conformance
# The checker runs inside a bare busybox rootfs, so it must be static.
RUSTFLAGS="-C target-feature=+crt-static" "$cargo" build -q --release \
  -p berth-conformance --bin conformance-checker \
  --target x86_64-unknown-linux-gnu --target-dir "$repo/target/conformance-checker"

# Private copies of the binaries: a concurrent cargo build in the shared target dir replaces
# target/debug/* while the suite runs, and a runtime that vanishes mid-run fails tests at random.
work=$(mktemp -d /tmp/berth-conformance-bin.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$runtime" "$work/$(basename "$runtime")"
cp "$repo/target/debug/berth-conformance" "$work/berth-conformance"
cp "$repo/target/conformance-checker/x86_64-unknown-linux-gnu/release/conformance-checker" "$work/checker"

export CONFORMANCE_SHARED=${CONFORMANCE_SHARED:-$repo/../shared}
"$work/berth-conformance" \
  --runtime "$work/$(basename "$runtime")" \
  --checker "$work/checker" \
  --busybox /bin/busybox \
  "${args[@]}"
