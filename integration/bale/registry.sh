#!/bin/bash
# bale pull/push/login/tags against the real CNCF distribution server
# (Debian's docker-registry) on 127.0.0.1, and interop with skopeo and
# podman. Two registries: plain HTTP without auth, and TLS (a CA and
# server certificate made here) with htpasswd Basic auth. Everything
# lives in one temp dir; every server started is stopped on exit.
#
#   integration/bale/registry.sh [path/to/bale]
#
# Needs (apt): docker-registry skopeo podman umoci openssl apache2-utils
# busybox-static curl python3.
set -euo pipefail

BALE=${1:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug/bale}
BALE=$(realpath "$BALE")
for tool in docker-registry skopeo podman umoci openssl htpasswd curl python3; do
    command -v $tool >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

W=$(mktemp -d /tmp/bale-registry.XXXXXX)
PIDS=()
# podman and skopeo make these host directories (netavark's run dir, the
# blob info cache) whatever their flags say: remove them again if new.
HOST_DIRS=()
for d in /run/containers /var/lib/containers; do [ -e $d ] || HOST_DIRS+=($d); done
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # podman (vfs driver) mounts nothing, but make sure before removing.
    umount -R -l "$W/podman" 2>/dev/null || true
    rm -rf "$W"
    for d in "${HOST_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

PASS=0
ok() { PASS=$((PASS + 1)); echo "ok $PASS - $*"; }
die() { echo "FAIL: $*" >&2; [ -f "$W/err" ] && sed 's/^/   | /' "$W/err" >&2; exit 1; }
# Reads all its input (unlike grep -q), so writers never see EPIPE.
has() { grep -e "$1" >/dev/null; }
expect_fail() {
    local what=$1; shift
    if "$@" >"$W/out" 2>"$W/err"; then die "$what: succeeded"; fi
    [ -s "$W/err" ] || die "$what: no error message"
    echo "   ($what: $(head -c 300 "$W/err"))"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
AUTH=$W/auth.json
bale() { local store=$1; shift; "$BALE" --root "$W/$store" "$@"; }
# A store's state, to show a failed command changed nothing.
store_state() { (cd "$W/$1" && cat index.json && ls blobs/sha256 bale/tmp) | sha256sum; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
PODMAN=(podman --root "$W/podman/root" --runroot "$W/podman/run" --tmpdir "$W/podman/tmp"
    --network-config-dir "$W/podman/net" --volumepath "$W/podman/vol"
    --storage-driver vfs --cgroup-manager cgroupfs --events-backend file)
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR" "$W/podman"

# start_registry NAME PORT [tls]: serve, and wait until /v2/ answers.
start_registry() {
    local name=$1 port=$2 tls=${3:-}
    mkdir -p "$W/$name/data"
    {
        echo "version: 0.1"
        echo "log: {level: warn}"
        echo "storage: {filesystem: {rootdirectory: $W/$name/data}, delete: {enabled: true}}"
        echo "http:"
        echo "  addr: 127.0.0.1:$port"
        if [ -n "$tls" ]; then
            echo "  tls: {certificate: $W/pki/server.crt, key: $W/pki/server.key}"
            echo "auth: {htpasswd: {realm: bale-test, path: $W/pki/htpasswd}}"
        fi
    } >"$W/$name/config.yml"
    docker-registry serve "$W/$name/config.yml" >"$W/$name/log" 2>&1 &
    PIDS+=($!)
    local scheme=http
    [ -n "$tls" ] && scheme=https
    for _ in $(seq 100); do
        curl -s -o /dev/null --cacert "$W/pki/ca.crt" "$scheme://127.0.0.1:$port/v2/" && return 0
        sleep 0.1
    done
    cat "$W/$name/log" >&2
    die "registry $name did not start"
}

# --- an image: two layers, made with umoci ----------------------------------
cd "$W"
umoci init --layout layout
umoci new --image layout:base
umoci unpack --image layout:base b1 >/dev/null
mkdir -p b1/rootfs/bin b1/rootfs/etc
cp /bin/busybox b1/rootfs/bin/busybox
ln -s busybox b1/rootfs/bin/sh
echo 'root:x:0:0:root:/root:/bin/sh' >b1/rootfs/etc/passwd
umoci repack --image layout:base b1 >/dev/null
umoci unpack --image layout:base b2 >/dev/null
head -c 3000000 /dev/urandom >b2/rootfs/noise
echo hello >b2/rootfs/hello
umoci repack --image layout:base b2 >/dev/null
umoci config --image layout:base --config.cmd /bin/sh
bale s1 import layout base:1 >/dev/null
D=$(bale s1 inspect --format json base:1 | json 'd["digest"]')
NBLOBS=$(bale s1 inspect --format json base:1 | json 'len(d["layers"]) + 1')
[ "$NBLOBS" = 3 ] || die "test image should have 2 layers and a config, has $NBLOBS blobs"
ok "test image base:1 $D ($NBLOBS blobs)"

# --- plain registry, no auth ------------------------------------------------
mkdir -p "$W/pki"
P1=$(free_port)
start_registry plain "$P1"
R1=127.0.0.1:$P1
ok "docker-registry on $R1"

bale s1 push base:1 "$R1/bale/app:v1" >"$W/out" 2>"$W/err" || die "push"
has "^$R1/bale/app:v1 $D uploaded=3 existed=0 mounted=0\$" <"$W/out" || die "push output: $(cat "$W/out")"
[ -s "$W/err" ] && die "push is quiet when stderr is not a terminal"
ok "bale push (monolithic uploads), quiet without a terminal"

out=$(bale s2 pull "$R1/bale/app:v1") || die "pull back"
[ "$out" = "$R1/bale/app:v1 $D" ] || die "pull back: $out"
bale s2 unpack --copy "$R1/bale/app:v1" "$W/bundle2" >/dev/null
cmp "$W/bundle2/rootfs/noise" "$W/b2/rootfs/noise" || die "pulled layer content differs"
ok "bale pull gives back the same manifest digest and content"

bale s1 push base:1 "$R1/bale/app:v1" | has "existed=3 mounted=0" || die "re-push skips existing blobs"
bale s1 push base:1 "$R1/bale/copy:v2" | has "uploaded=0 existed=0 mounted=3" || die "cross-repo mount"
[ "$(bale s1 tags "$R1/bale/app")" = v1 ] || die "tags"
ok "HEAD skips existing blobs, cross-repository mount, tag listing"

bale s3 import layout base:1 >/dev/null
bale s3 push --chunk-size 65536 base:1 "$R1/chunked/app:v1" | has "uploaded=3" || die "chunked push"
[ "$(skopeo inspect --tls-verify=false "docker://$R1/chunked/app:v1" | json 'd["Digest"]')" = "$D" ] ||
    die "skopeo sees the chunked push"
skopeo copy -q --src-tls-verify=false "docker://$R1/chunked/app:v1" "oci:$W/chunked-back:x"
cmp "$W/chunked-back/blobs/sha256/$(bale s1 inspect --format json base:1 | json 'd["layers"][1]["digest"][7:]')" \
    "$W/s1/blobs/sha256/$(bale s1 inspect --format json base:1 | json 'd["layers"][1]["digest"][7:]')" ||
    die "chunked layer differs"
ok "chunked upload (PATCH with Content-Range) read back by skopeo"

skopeo copy -q --dest-tls-verify=false oci:layout:base "docker://$R1/skopeo/oci:v1"
SD=$(skopeo inspect --tls-verify=false "docker://$R1/skopeo/oci:v1" | json 'd["Digest"]')
[ "$(bale s4 pull "$R1/skopeo/oci:v1")" = "$R1/skopeo/oci:v1 $SD" ] || die "pull what skopeo pushed"
[ "$(bale s4 pull "$R1/skopeo/oci@$SD")" = "$R1/skopeo/oci:sha256-${SD#sha256:} $SD" ] || die "pull by digest"
ok "skopeo push (OCI) then bale pull, by tag and by digest"

skopeo copy -q --format v2s2 --dest-tls-verify=false oci:layout:base "docker://$R1/skopeo/docker:v1"
RAW=$(skopeo inspect --raw --tls-verify=false "docker://$R1/skopeo/docker:v1")
echo "$RAW" | has 'application/vnd.docker.distribution.manifest.v2+json' || die "skopeo wrote schema 2"
bale s4 pull --extract "$R1/skopeo/docker:v1" >/dev/null || die "pull docker schema 2"
INS=$(bale s4 inspect --format json "$R1/skopeo/docker:v1")
[ "$(echo "$INS" | json 'd["manifest"]["mediaType"]')" = application/vnd.oci.image.manifest.v1+json ] ||
    die "schema 2 stored as OCI"
[ "$(echo "$INS" | json 'd["manifest"]["config"]["digest"]')" = "$(echo "$RAW" | json 'd["config"]["digest"]')" ] ||
    die "config digest preserved"
[ "$(echo "$INS" | json '[l["digest"] for l in d["layers"]]')" = "$(echo "$RAW" | json '[l["digest"] for l in d["layers"]]')" ] ||
    die "layer digests preserved"
ok "Docker schema 2 pulled as OCI with config and layer digests preserved (and extracted)"

skopeo copy -q --src-tls-verify=false "docker://$R1/bale/app:v1" "oci:$W/skopeo-back:v1"
[ "$(skopeo inspect "oci:$W/skopeo-back:v1" | json 'd["Digest"]')" = "$D" ] || die "skopeo pulls bale's push"
ok "bale push then skopeo copy: same digest"

"${PODMAN[@]}" pull -q --tls-verify=false "$R1/bale/app:v1" >/dev/null 2>"$W/err" || die "podman pull"
[ "$("${PODMAN[@]}" image inspect --format '{{.Digest}}' "$R1/bale/app:v1")" = "$D" ] || die "podman digest"
ok "bale push then podman pull: same digest"

# --- failures leave the store as it was --------------------------------------
bale s6 images >/dev/null
before=$(store_state s6)
expect_fail "unknown tag" bale s6 pull "$R1/bale/app:nope"
has "not found" <"$W/err" || die "unknown tag error"
expect_fail "no registry there" bale s6 pull --retry-times 0 "127.0.0.1:$(free_port)/x/y:v1"
expect_fail "bad reference" bale s6 pull "$R1/Bad/Name"
# Flip a byte of a layer in the registry's storage: it serves a bad blob.
L1=$(bale s1 inspect --format json base:1 | json 'd["layers"][1]["digest"][7:]')
DATA=$W/plain/data/docker/registry/v2/blobs/sha256/${L1:0:2}/$L1/data
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[-1]^=0xff; open(p,'wb').write(b)" "$DATA"
expect_fail "corrupt blob" bale s6 pull "$R1/bale/copy:v2"
has "sha256:$L1" <"$W/err" || die "the error names the corrupt blob"
[ "$(store_state s6)" = "$before" ] || die "failed pulls changed the store"
ok "unknown tag, no registry, bad reference, corrupt blob: clear errors, store unchanged"

# --- an interrupted pull resumes where it stopped ---------------------------
cd "$W"
umoci init --layout biglayout
umoci new --image biglayout:big
umoci unpack --image biglayout:big b3 >/dev/null
head -c 48000000 /dev/urandom >b3/rootfs/big
umoci repack --image biglayout:big b3 >/dev/null
bale s1 import biglayout big:1 >/dev/null
bale s1 push big:1 "$R1/big/app:v1" >/dev/null
BIG=$(bale s1 inspect --format json big:1 | json 'd["layers"][-1]["digest"][7:]')
FULL=$(stat -c %s "$W/s1/blobs/sha256/$BIG")
PART=$W/s7/bale/tmp/partial-$BIG
"$BALE" --root "$W/s7" pull "$R1/big/app:v1" >/dev/null 2>&1 &
PULL=$!
PIDS+=($PULL)
for _ in $(seq 1000); do
    [ "$(stat -c %s "$PART" 2>/dev/null || echo 0)" -gt 0 ] && break
    sleep 0.01
done
kill -9 $PULL 2>/dev/null || true
wait $PULL 2>/dev/null || true
HAVE=$(stat -c %s "$PART" 2>/dev/null || echo 0)
[ "$HAVE" -gt 0 ] && [ "$HAVE" -lt "$FULL" ] || die "could not stop the pull midway ($HAVE of $FULL bytes)"
bale s7 images | has "big/app" && die "a killed pull tagged the image"
cp "$PART" "$W/partial.copy"
# Proof that the next pull continues from the partial file rather than
# starting over: with the file's first byte flipped, the resumed blob must
# fail its digest check (and the damaged file is thrown away)...
python3 -c "import sys; f=open(sys.argv[1],'r+b'); b=f.read(1); f.seek(0); f.write(bytes([b[0]^0xff]))" "$PART"
expect_fail "resume onto a damaged partial file" bale s7 pull "$R1/big/app:v1"
has "digest mismatch for blob sha256:$BIG" <"$W/err" || die "damaged resume error"
[ -e "$PART" ] && die "a partial file that failed verification is kept"
# ...while the intact partial file resumes into the right image.
cp "$W/partial.copy" "$PART"
[ "$(bale s7 pull "$R1/big/app:v1")" = "$R1/big/app:v1 $(bale s1 inspect --format json big:1 | json 'd["digest"]')" ] ||
    die "resumed pull"
[ -e "$PART" ] && die "partial file left after the pull"
ok "a killed pull ($HAVE of $FULL bytes) is resumed by the next one"

# --- TLS + htpasswd registry -------------------------------------------------
cd "$W/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=bale test CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile ext -out server.crt 2>/dev/null
htpasswd -Bbn bob s3cret >htpasswd 2>/dev/null
mkdir -p "$W/certs" && cp ca.crt "$W/certs/ca.crt"
cd "$W"
P2=$(free_port)
start_registry secure "$P2" tls
R2=127.0.0.1:$P2
ok "docker-registry with TLS and htpasswd on $R2"

expect_fail "untrusted certificate" bale s1 push --authfile "$AUTH" base:1 "$R2/secure/app:v1"
has "certificate: UnknownIssuer" <"$W/err" || die "TLS error should say why"
expect_fail "no credentials" bale s1 push --authfile "$AUTH" --cert-dir "$W/certs" base:1 "$R2/secure/app:v1"
has "authentication required" <"$W/err" || die "auth error"
expect_fail "wrong password" bale s1 login --authfile "$AUTH" --cert-dir "$W/certs" -u bob -p nope "$R2"
[ -e "$AUTH" ] && die "a failed login stored credentials"
echo s3cret | bale s1 login --authfile "$AUTH" --cert-dir "$W/certs" -u bob --password-stdin "$R2" | has "Login Succeeded" ||
    die "login"
[ "$(json "d['auths']['$R2']['auth']" <"$AUTH")" = "$(printf bob:s3cret | base64)" ] || die "auth.json entry"
[ "$(stat -c %a "$AUTH")" = 600 ] || die "auth.json mode"
ok "TLS verified against the test CA; no creds / wrong password refused; login stores docker-style auths"

bale s1 push --authfile "$AUTH" --cert-dir "$W/certs" base:1 "$R2/secure/app:v1" | has " $D uploaded=3" ||
    die "push over TLS with Basic auth"
[ "$(bale s5 pull --authfile "$AUTH" --tls-verify=false "$R2/secure/app:v1")" = "$R2/secure/app:v1 $D" ] ||
    die "pull with --tls-verify=false"
[ "$(bale s5 tags --authfile "$AUTH" --cert-dir "$W/certs" "$R2/secure/app")" = v1 ] || die "tags with auth"
[ "$(bale s5 tags --authfile "$W/none.json" --creds bob:s3cret --cert-dir "$W/certs" "$R2/secure/app")" = v1 ] ||
    die "tags with --creds"
ok "push and pull over TLS with Basic auth (digests identical), tags"

[ "$(skopeo inspect --authfile "$AUTH" --cert-dir "$W/certs" "docker://$R2/secure/app:v1" | json 'd["Digest"]')" = "$D" ] ||
    die "skopeo reads bale's auth file"
skopeo copy -q --dest-authfile "$AUTH" --dest-cert-dir "$W/certs" oci:layout:base "docker://$R2/secure/sk:v1"
bale s5 pull --authfile "$AUTH" --cert-dir "$W/certs" "$R2/secure/sk:v1" >/dev/null || die "pull skopeo's push over TLS"
"${PODMAN[@]}" pull -q --authfile "$AUTH" --cert-dir "$W/certs" "$R2/secure/app:v1" >/dev/null 2>"$W/err" ||
    die "podman pull over TLS"
[ "$("${PODMAN[@]}" image inspect --format '{{.Digest}}' "$R2/secure/app:v1")" = "$D" ] || die "podman digest (TLS)"
ok "skopeo and podman use bale's auth file over TLS; bale pulls skopeo's push"

bale s5 logout --authfile "$AUTH" "$R2" | has "Removed" || die "logout"
expect_fail "logout twice" bale s5 logout --authfile "$AUTH" "$R2"
expect_fail "pull after logout" bale s5 pull --authfile "$AUTH" --cert-dir "$W/certs" "$R2/secure/app:v1"
has "authentication required" <"$W/err" || die "pull after logout should need auth"
ok "logout forgets the credentials"

echo "all $PASS registry checks passed"
