#!/usr/bin/env bash
# Runs the conformance suite against runc and against berth on this host, prints both
# summaries, and fails if berth fails any test that runc passes.
#
#   conformance/compare.sh [--runc PATH] [--berth PATH] [runner options...]
#
# Defaults: runc is /usr/sbin/runc (Debian's package), berth is the freshly built debug binary.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

runc=/usr/sbin/runc
berth=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runc) runc=$2; shift 2 ;;
    --berth) berth=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -x "$runc" ]; then
  echo "conformance/compare.sh: $runc not found: apt-get install -y runc" >&2
  exit 2
fi
if [ -z "$berth" ]; then
  cargo build -q -p berth --bin berth
  berth=$repo/target/debug/berth
fi

out=$(mktemp -d /tmp/berth-conformance-compare.XXXXXX)
trap 'rm -rf "$out"' EXIT

# Each run may fail (that is information); a broken setup (exit 2) stops the comparison.
run() {
  local name=$1 runtime=$2 rc=0
  echo "== conformance against $name ($runtime)"
  conformance/run.sh --runtime "$runtime" --results "$out/$name.tsv" "${args[@]}" | tee "$out/$name.tap" || rc=$?
  if [ "$rc" -ge 2 ]; then
    echo "conformance/compare.sh: the suite could not run against $name (exit $rc)" >&2
    exit 2
  fi
}
run runc "$runc"
run berth "$berth"

echo "== summaries"
echo "runc:  $(grep '^conformance:' "$out/runc.tap")"
echo "berth: $(grep '^conformance:' "$out/berth.tap")"

# Tests runc passes and berth does not.
regressions=$(awk -F'\t' 'NR == FNR { if ($1 == "pass") runc[$2] = 1; next }
                          ($2 in runc) && $1 != "pass" { print "  " $2 " (berth: " $1 ")" }' \
              "$out/runc.tsv" "$out/berth.tsv")
berth_only=$(awk -F'\t' 'NR == FNR { if ($1 == "pass") runc[$2] = 1; next }
                         !($2 in runc) && $1 == "pass" { n++ } END { print n + 0 }' \
             "$out/runc.tsv" "$out/berth.tsv")
echo "berth passes $berth_only test(s) that runc does not"
if [ -n "$regressions" ]; then
  echo "berth fails tests that runc passes on this host:"
  echo "$regressions"
  exit 1
fi
echo "compare: berth passes every test that runc passes"
