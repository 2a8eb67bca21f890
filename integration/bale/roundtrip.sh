#!/bin/bash
# Round trips between bale and real tools (umoci, skopeo, a runc-compatible
# runtime), run for real as root on a private tmpfs that is always removed.
#
#   integration/bale/roundtrip.sh [path/to/bale]
#
# Needs: umoci skopeo busybox-static (apt), and a runtime: berth next to
# bale by default, or RUNTIME=/usr/sbin/runc.
set -euo pipefail

BALE=${1:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/bale}
BALE=$(realpath "$BALE")
RUNTIME_ARGS=()
[ -n "${RUNTIME:-}" ] && RUNTIME_ARGS=(--runtime "$RUNTIME")

W=$(mktemp -d /tmp/bale-roundtrip.XXXXXX)
mount -t tmpfs tmpfs "$W"
cleanup() {
    # Containers first, then every mount below the scratch dir, then it.
    for id in $(ls "$W/store/bale/run" 2>/dev/null); do
        "${RUNTIME:-$(dirname "$BALE")/berth}" delete --force "$id" >/dev/null 2>&1 || true
    done
    umount -R -l "$W" 2>/dev/null || true
    rmdir "$W" 2>/dev/null || true
    for d in "${HOST_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
# podman makes these host directories whatever its flags say: remove the ones it creates.
HOST_DIRS=()
for d in /run/containers /var/lib/containers; do [ -e $d ] || HOST_DIRS+=($d); done

STORE=$W/store
PASS=0
bale() { "$BALE" --root "$STORE" "$@"; }
ok() { PASS=$((PASS + 1)); echo "ok $PASS - $*"; }
# Reads all its input (unlike grep -q), so writers never see EPIPE.
has() { grep -e "$1" >/dev/null; }
die() { echo "FAIL: $*" >&2; exit 1; }
expect_fail() {
    local what=$1; shift
    if "$@" >"$W/out" 2>"$W/err"; then die "$what: succeeded"; fi
    [ -s "$W/err" ] || die "$what: no error message"
    echo "   ($what: $(head -c 200 "$W/err"))"
}
# A comparable listing of a tree: path, type, mode, owner, content or target.
listing() {
    (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %l\n' | sort |
        while read -r p y m o l; do
            if [ "$y" = f ]; then echo "$p $y $m $o $(sha256sum <"$p" | cut -c1-16)"; else echo "$p $y $m $o $l"; fi
        done)
}
store_state() { (cd "$STORE" && cat index.json && ls blobs/sha256 bale/layers) | sha256sum; }

# --- an image built with umoci ------------------------------------------
cd "$W"
umoci init --layout umoci-layout
umoci new --image umoci-layout:base
umoci unpack --image umoci-layout:base ub >/dev/null
R=ub/rootfs
mkdir -p $R/bin $R/etc $R/data/sub $R/data/gone $R/data/swap $R/data/opq $R/home/app
cp /bin/busybox $R/bin/busybox
for c in sh ls cat echo rm mkdir id sleep; do ln -s busybox $R/bin/$c; done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' >$R/etc/passwd
printf 'root:x:0:\napp:x:1000:\nwheel:x:10:app\n' >$R/etc/group
echo hello >$R/data/hello
ln $R/data/hello $R/data/hello-link
echo x >$R/data/sub/x; echo g >$R/data/gone/g; echo s >$R/data/swap/s
echo 1 >$R/data/opq/old1; echo 2 >$R/data/opq/old2
mkfifo $R/data/fifo; chown -R 1000:1000 $R/home/app $R/data; chmod 4755 $R/data/hello
umoci repack --image umoci-layout:base ub >/dev/null
umoci config --image umoci-layout:base --config.cmd /bin/sh --config.cmd -c \
    --config.cmd 'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) pwd=$PWD home=$HOME foo=$FOO"' \
    --config.env FOO=bar --config.workingdir /data --config.user app \
    --config.label org.example=yes --config.exposedports 8080/tcp
ok "umoci built an image"

# --- import: OCI layout dir, oci-archive, docker-archive (from skopeo) -----
bale import umoci-layout base:1 | has '^base:1 sha256:' || die "import oci dir"
skopeo copy -q oci:umoci-layout:base oci-archive:$W/base-oci.tar:fromskopeo:1
skopeo copy -q oci:umoci-layout:base docker-archive:$W/base-docker.tar:docker.io/library/fromdocker:1
bale import "$W/base-oci.tar" | has '^fromskopeo:1 ' || die "import oci-archive"
bale import "$W/base-docker.tar" | has '^fromdocker:1 ' || die "import docker-archive (name from RepoTags)"
bale images | has '^fromdocker:1 ' || die "images lists fromdocker:1"
[ "$(bale images --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 3 ] || die "images json"
ok "imported OCI dir, oci-archive and docker-archive"

# --- unpack and run: the image's user, env, cwd -----------------------------
for img in base:1 fromskopeo:1 fromdocker:1; do
    out=$(bale run --rm "${RUNTIME_ARGS[@]}" "$img" </dev/null)
    [ "$out" = "uid=1000 gid=1000 groups=1000 10 pwd=/data home=/home/app foo=bar" ] || die "run $img: $out"
done
ok "ran each imported image with the image's user/env/cwd"
set +e; bale run --rm "${RUNTIME_ARGS[@]}" base:1 sh -c 'exit 42' </dev/null; rc=$?; set -e
[ $rc = 42 ] || die "exit code $rc"
ok "bale run returns the container's exit code"

bale unpack base:1 "$W/b-overlay" >/dev/null
bale unpack --copy base:1 "$W/b-copy" >/dev/null
umoci unpack --image umoci-layout:base "$W/b-umoci" >/dev/null
[ "$(listing "$W/b-overlay/rootfs")" = "$(listing "$W/b-umoci/rootfs")" ] || die "overlay unpack differs from umoci"
[ "$(listing "$W/b-copy/rootfs")" = "$(listing "$W/b-umoci/rootfs")" ] || die "copy unpack differs from umoci"
python3 - "$W/b-overlay/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
p = c["process"]
assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}, p["user"]
assert p["cwd"] == "/data" and "FOO=bar" in p["env"], p
assert c["annotations"]["org.example"] == "yes"
assert c["annotations"]["org.opencontainers.image.exposedPorts"] == "8080/tcp"
assert c["root"] == {"path": "rootfs", "readonly": False}
PY
ok "unpack (overlay and --copy) gives umoci's tree; config.json from the image config"

bale umount "$W/b-overlay"
mountpoint -q "$W/b-overlay/rootfs" && die "still mounted"
bale mount "$W/b-overlay"
mountpoint -q "$W/b-overlay/rootfs" || die "not mounted again"
ok "umount / mount of a bundle"

# --- commit: whiteouts through a commit-then-unpack cycle -------------------
bale run --name c1 "${RUNTIME_ARGS[@]}" base:1 sh -c '
    rm /data/hello                       # delete a file (hardlink kept)
    rm -r /data/gone                     # delete a directory
    rm -r /data/swap; echo f > /data/swap   # directory replaced by a file
    rm -r /data/opq; mkdir /data/opq; echo n > /data/opq/new  # opaque dir
    echo added > /data/added' </dev/null 2>/dev/null
C1=$STORE/bale/run/c1
bale commit -m "change data" -a "tester" "$C1" app:2 | has '^app:2 sha256:' || die commit
bale history app:2 | has 'change data' || die "history entry"
bale inspect --format json app:2 | python3 -c '
import json,sys; i=json.load(sys.stdin)
assert len(i["layers"]) == 2 and i["config"]["author"] == "tester", i["layers"]'
bale commit --compression zstd "$C1" app:2-zstd >/dev/null
ok "committed the container's writable layer"

bale unpack --copy app:2 "$W/c-copy" >/dev/null
bale unpack app:2-zstd "$W/c-overlay" >/dev/null
want=$(listing "$C1/rootfs")
[ "$(listing "$W/c-copy/rootfs")" = "$want" ] || die "commit+unpack --copy differs"
[ "$(listing "$W/c-overlay/rootfs")" = "$want" ] || die "commit+unpack overlay differs"
ok "commit then unpack reproduces the container's tree (delete file/dir, replace dir, opaque dir)"

# skopeo and umoci read the committed image straight from the store.
skopeo inspect "oci:$STORE:app:2" | has '"Architecture": "amd64"' || die "skopeo inspect"
umoci unpack --image "$STORE:app:2" "$W/c-umoci" >/dev/null
[ "$(listing "$W/c-umoci/rootfs")" = "$want" ] || die "umoci unpack of the committed image differs"
out=$(bale run --rm "${RUNTIME_ARGS[@]}" app:2 cat /data/added /data/opq/new </dev/null)
[ "$out" = "$(printf 'added\nn')" ] || die "run committed image: $out"
ok "committed image read by skopeo and umoci (same tree) and run"

# --- commit of a --copy bundle -----------------------------------------------
rm -f "$W/c-copy/rootfs/data/added"; echo more > "$W/c-copy/rootfs/data/more"
bale commit "$W/c-copy" app:3 >/dev/null
bale unpack app:3 "$W/d" >/dev/null
diff <(listing "$W/d/rootfs") <(listing "$W/c-copy/rootfs") >&2 || die "copy-bundle commit"
ok "commit of a --copy bundle"

# --- export: archives other tools load -------------------------------------
bale export --format oci-archive -o "$W/app-oci.tar" app:2
bale export --format docker-archive -o "$W/app-docker.tar" app:2
skopeo inspect "oci-archive:$W/app-oci.tar:app:2" >/dev/null || die "skopeo reads oci-archive"
skopeo inspect "docker-archive:$W/app-docker.tar" | has '"Os": "linux"' || die "skopeo reads docker-archive"
tar -xOf "$W/app-docker.tar" manifest.json | has '"RepoTags":\["app:2"\]' || die "docker-archive RepoTags"
skopeo copy -q "docker-archive:$W/app-docker.tar" oci:$W/from-docker:x
umoci unpack --image $W/from-docker:x "$W/e" >/dev/null
[ "$(listing "$W/e/rootfs")" = "$want" ] || die "docker-archive export tree"
ok "exported oci-archive and docker-archive read by skopeo; same tree"

# podman loads both exports into storage of its own under the scratch dir.
if command -v podman >/dev/null; then
    PODMAN=(podman --root "$W/podman/root" --runroot "$W/podman/run" --tmpdir "$W/podman/tmp"
        --storage-driver vfs)
    "${PODMAN[@]}" load -i "$W/app-docker.tar" >/dev/null 2>"$W/err" || die "podman load docker-archive: $(cat "$W/err")"
    "${PODMAN[@]}" load -i "$W/app-oci.tar" >/dev/null 2>"$W/err" || die "podman load oci-archive: $(cat "$W/err")"
    "${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' | has 'app:2' || die "podman lists app:2"
    "${PODMAN[@]}" image inspect --format '{{.Os}}' app:2 | has linux || die "podman inspects app:2"
    ok "podman loads the docker-archive and oci-archive exports"
else
    echo "   (podman not installed: podman load check skipped)"
fi

# --- multi-platform index: linux/amd64 by default, --platform to choose ----
python3 - "$W/umoci-layout" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
def put(obj):
    data = json.dumps(obj).encode()
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(d, "blobs/sha256", h), "wb").write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
idx = json.load(open(os.path.join(d, "index.json")))
amd = [m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "base"][0]
man = json.load(open(os.path.join(d, "blobs/sha256", amd["digest"][7:])))
cfg = json.load(open(os.path.join(d, "blobs/sha256", man["config"]["digest"][7:])))
cfg["architecture"] = "arm64"
man["config"].update(put(cfg))
arm = dict(put(man), mediaType="application/vnd.oci.image.manifest.v1+json",
           platform={"architecture": "arm64", "os": "linux"})
amd_entry = {"mediaType": amd["mediaType"], "digest": amd["digest"], "size": amd["size"],
             "platform": {"architecture": "amd64", "os": "linux"}}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [arm, amd_entry]}
entry = dict(put(index), mediaType="application/vnd.oci.image.index.v1+json",
             annotations={"org.opencontainers.image.ref.name": "multi"})
idx["manifests"].append(entry)
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
PY
skopeo copy -q --multi-arch all oci:umoci-layout:multi oci-archive:$W/multi.tar:multi:1
bale import "$W/multi.tar" multi:amd >/dev/null
bale --platform linux/arm64 import "$W/multi.tar" multi:arm >/dev/null
[ "$(bale inspect --format json multi:amd | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["architecture"])')" = amd64 ] || die "default platform"
[ "$(bale inspect --format json multi:arm | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["architecture"])')" = arm64 ] || die "--platform"
expect_fail "no such platform" bale --platform linux/s390x import "$W/multi.tar" multi:s390x
ok "image index: linux/amd64 by default, --platform picks another, a missing one is an error"

# --- tag, rm, gc ------------------------------------------------------------
bale tag app:2 app:latest
bale rm app:2-zstd multi:arm fromskopeo:1 >/dev/null
bale gc | has 'removed [1-9]' || die "gc removed nothing"
for img in app:latest base:1 app:3 multi:amd; do bale inspect "$img" >/dev/null || die "gc broke $img"; done
bale run --rm "${RUNTIME_ARGS[@]}" app:latest cat /data/added </dev/null | has added || die "run after gc"
bale gc | has 'removed 0 blobs .* and 0 extracted' || die "second gc not empty"
ok "tag, rm, gc keeps referenced images"

# --- hostile input via the CLI: clear error, store unchanged ----------------
before=$(store_state)
expect_fail "unknown image" bale unpack nosuch:1 "$W/x"
expect_fail "bad reference" bale tag base:1 'Bad Name'
echo garbage >"$W/garbage.tar"
expect_fail "garbage archive" bale import "$W/garbage.tar" g:1
head -c 100000 "$W/app-oci.tar" >"$W/trunc.tar"
expect_fail "truncated archive" bale import --format oci-archive "$W/trunc.tar" t:1
[ "$(store_state)" = "$before" ] || die "store changed by failed imports"
layer=$(bale inspect --format json base:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"][7:])')
chmod u+w "$STORE/blobs/sha256/$layer"; printf 'X' | dd of="$STORE/blobs/sha256/$layer" bs=1 seek=100 conv=notrunc 2>/dev/null
rm -rf "$STORE/bale/layers/"*
expect_fail "corrupted blob" bale unpack base:1 "$W/y"
grep -q 'digest mismatch' "$W/err" || die "corrupted blob message"
[ ! -e "$W/y" ] || die "bundle left behind"
[ -z "$(ls "$STORE/bale/layers")" ] || die "half-extracted layer left behind"
ok "hostile input: clear errors, nothing left behind"

bale delete "$W/b-overlay"; [ ! -e "$W/b-overlay" ] || die "delete bundle"
echo "all $PASS bale round-trip checks passed"
