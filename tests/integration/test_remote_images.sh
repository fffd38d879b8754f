#!/usr/bin/env bash
# Shipping images to a target (issue 19, docs/remote.md "Shipping images"): a
# hub silod and an edge silod on loopback TLS, each with its own image cache.
# The blob routes on the edge (a tampered blob and a tampered chunk refused and
# dropped, a wrong offset refused naming where to resume, a resumed upload
# completing); an image imported only on the hub runs on the edge after
# `silo create --target`; a push interrupted halfway resumes from the bytes the
# edge kept; a corrupted blob in the hub's cache is refused by the edge.
. "$(dirname "$0")/silod-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
command -v openssl > /dev/null || skip_all "openssl is not installed (scripts/setup-debian.sh)"
[ "$(id -u)" = 0 ] || skip_all "image import needs root"
BB=$(command -v busybox || true)
[ -x /bin/busybox ] && BB=/bin/busybox
[ -n "$BB" ] || skip_all "busybox is not installed"
trap 'node_cleanup edge; [ -n "${EV:-}" ] && kill "$EV" 2> /dev/null; echo "1..$N"; cleanup' EXIT

# private caches: nothing imported here touches the shared one; the loader
# initramfs (keyed by the agent build) is shared with it
REAL=${SILO_CACHE_DIR:-$HOME/.cache/silo}
mkdir -p "$REAL/oci/loader"
for c in hub edge; do
	mkdir -p "$TMP/cache-$c/oci"
	ln -s "$REAL/oci/loader" "$TMP/cache-$c/oci/loader"
done
export SILO_IMAGES_DIR=${SILO_SOURCE_ROOT:?}/images
mkca ca && mkcert ca server server || { notok "openssl makes the test CA"; exit 1; }
P=$TMP/pki
TOKEN=$(newtoken)
printf '%s\n' "$TOKEN" > "$TMP/token"
SILO_CACHE_DIR=$TMP/cache-edge start_node edge --listen 127.0.0.1:0 --token-file "$TMP/token" \
	--tls-cert "$P/server.pem" --tls-key "$P/server.key" || { notok "the edge silod starts"; exit 1; }
URL=https://127.0.0.1:$NODE_PORT
ESOCK=$TMP/edge/run/silod.sock
export SILO_CACHE_DIR=$TMP/cache-hub
start_daemon --target-probe-ms 500 || { notok "the hub silod starts"; exit 1; }
export SILO_SOCKET=$SOCK
eapi() { # eapi METHOD PATH [curl args]: the edge over TLS with its token; status in $TMP/status
	local m=$1 p=$2; shift 2
	curl -s -o "$TMP/body" -w '%{http_code}' --cacert "$P/ca.pem" -H "Authorization: Bearer $TOKEN" \
		-X "$m" "$@" "$URL$p" > "$TMP/status"
	cat "$TMP/body"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- the blob routes on the edge ----
printf 'hello' > "$TMP/b1"
h=$(printf 'hellp' | sha256sum | cut -d' ' -f1)
eapi PUT "/v1/blobs/$h?size=5" --data-binary @"$TMP/b1" > /dev/null
expect_error "a blob whose bytes do not hash to its name: CHECKSUM_MISMATCH" 422 CHECKSUM_MISMATCH "hash to sha256:$(sha "$TMP/b1")" dropped
check "... and nothing of it is kept" test "$(eapi GET "/v1/blobs/$h" | jget '(j["complete"], j["have"])')" = "(False, 0)"
head -c 300000 /dev/urandom > "$TMP/b2"
h2=$(sha "$TMP/b2")
head -c 100000 "$TMP/b2" > "$TMP/b2a"
tail -c +100001 "$TMP/b2" > "$TMP/b2b"
eapi PUT "/v1/blobs/$h2?offset=0&size=300000" --data-binary @"$TMP/b2a" > /dev/null
check "the first 100000 bytes of a blob: kept as a partial upload" \
	test "$(eapi GET "/v1/blobs/$h2" | jget '(j["complete"], j["have"])')" = "(False, 100000)"
eapi PUT "/v1/blobs/$h2?offset=0&size=300000" --data-binary @"$TMP/b2a" > /dev/null
expect_error "a chunk at the wrong offset: CONFLICT naming where to resume" 409 CONFLICT "resume at 100000"
eapi PUT "/v1/blobs/$h2?offset=100000&size=200" --data-binary @"$TMP/b2b" > /dev/null
expect_error "a chunk past the blob's size: INVALID_CONFIG" 400 INVALID_CONFIG "past the blob's size"
eapi PUT "/v1/blobs/$h2?offset=100000&size=300000" --data-binary @"$TMP/b2b" > /dev/null
check "the rest from offset 100000: the blob is complete and verified" \
	test "$(eapi GET "/v1/blobs/$h2" | jget '(j["complete"], j["have"])')" = "(True, 300000)"
check "... stored byte for byte" cmp -s "$TMP/b2" "$TMP/edge/state/blobs/sha256/$h2"
head -c 200000 /dev/urandom > "$TMP/b3"
h3=$(sha "$TMP/b3")
head -c 100000 "$TMP/b3" > "$TMP/b3a"
tail -c +100001 "$TMP/b3" | python3 -c 'import sys; b=bytearray(sys.stdin.buffer.read()); b[500]^=1; sys.stdout.buffer.write(b)' > "$TMP/b3b"
eapi PUT "/v1/blobs/$h3?offset=0&size=200000" --data-binary @"$TMP/b3a" > /dev/null
eapi PUT "/v1/blobs/$h3?offset=100000&size=200000" --data-binary @"$TMP/b3b" > /dev/null
expect_error "a tampered second chunk (one bit): CHECKSUM_MISMATCH" 422 CHECKSUM_MISMATCH "sha256:$h3"
check "... the partial upload is dropped (not complete, 0 bytes)" \
	test "$(eapi GET "/v1/blobs/$h3" | jget '(j["complete"], j["have"])')" = "(False, 0)"
eapi GET "/v1/images/nosuch" > /dev/null
expect_error "GET /v1/images/NAME of an image the edge lacks: NOT_FOUND" 404 NOT_FOUND nosuch

if ! curl -s --unix-socket "$ESOCK" http://silod/v1/providers | python3 -c 'import json,sys
p=[x for x in json.load(sys.stdin)["providers"] if x["name"]=="namespace"]; sys.exit(0 if p and p[0]["available"] else 1)'; then
	ok "# SKIP shipping through the hub: the namespace provider is unavailable here"
	exit 0
fi

# ---- an image imported only on the hub ----
R=$TMP/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/tmp"
cp "$BB" "$R/bin/busybox"
for a in sh cat echo true; do ln -s busybox "$R/bin/$a"; done
echo "shipped from the hub" > "$R/etc/marker"
tar -C "$R" -cf "$TMP/rootfs.tar" .
"$SILO" image import "$TMP/rootfs.tar" --name shipme --format rootfs > "$TMP/import.out" 2>&1
check "silo image import on the hub (private cache)" test $? = 0
"$SILO" target add edge "$URL" --token-file "$TMP/token" --ca "$P/ca.pem" > /dev/null 2> "$TMP/err"
check "target add edge" test $? = 0
check "the edge has no image shipme" eval "! SILO_CACHE_DIR='$TMP/cache-edge' '$SILO' image inspect shipme > /dev/null 2>&1"
curl -sN --unix-socket "$SOCK" http://silod/v1/events > "$TMP/events" &
EV=$!
id=$("$SILO" create --target edge --provider namespace --image shipme --name s1 --memory 256 2> "$TMP/err")
check "create --target edge --image shipme: the image is shipped, the sandbox created ($(head -c 300 "$TMP/err"))" test -n "$id"
out=$("$SILO" exec "$id" -- cat /etc/marker 2>&1)
check "the sandbox on the edge runs the hub's image ($out)" test "$out" = "shipped from the hub"
eapi GET /v1/images/shipme > "$TMP/eimg"
check "the edge's image has the hub's layer tree digest" \
	test "$(jget 'j["layers"][0]["tree"]' < "$TMP/eimg")" = "$("$SILO" image inspect shipme | jget 'j["image"]["layers"][0]["tree"]')"
"$SILO" rm --grace-ms 0 "$id" > /dev/null
id=$("$SILO" create --target edge --provider namespace --image shipme --name s2 --memory 256 2> "$TMP/err")
check "a second create on the edge: nothing shipped again (one push event)" \
	eval "[ -n '$id' ] && [ \$(grep -c 'image-shipped' '$TMP/events') = 1 ]"
"$SILO" rm --grace-ms 0 "$id" > /dev/null
line=$(grep -o 'image shipme shipped ([0-9]* layers, [0-9]* of [0-9]* bytes sent)' "$TMP/events" | head -1)
check "the first push sent every byte ($line)" python3 -c '
import re,sys; a,b=re.search(r"(\d+) of (\d+) bytes",sys.argv[1]).groups(); assert a==b and int(a)>0' "$line"

# ---- an interrupted push resumes ----
# the edge loses the image and the layer's blob, but kept the first 50000 bytes of it
layer=$(ls "$TMP/state/ship" | sed -n 's/^layer-//p' | head -1)
lhex=$(cat "$TMP/state/ship/layer-$layer")
lsize=$(stat -c %s "$TMP/state/ship/blob-$lhex")
SILO_CACHE_DIR=$TMP/cache-edge SILO_SOCKET=$ESOCK "$SILO" image rm shipme > /dev/null 2>&1
rm -f "$TMP/edge/state/blobs/sha256/$lhex"
mkdir -p "$TMP/edge/state/blobs/partial"
head -c 50000 "$TMP/state/ship/blob-$lhex" > "$TMP/edge/state/blobs/partial/$lhex"
check "the edge reports 50000 bytes of the layer's blob" \
	test "$(eapi GET "/v1/blobs/$lhex" | jget '(j["complete"], j["have"])')" = "(False, 50000)"
id=$("$SILO" create --target edge --provider namespace --image shipme --name s3 --memory 256 2> "$TMP/err")
check "create again: the image is shipped again ($(head -c 300 "$TMP/err"))" test -n "$id"
line=$(grep -o 'image shipme shipped ([0-9]* layers, [0-9]* of [0-9]* bytes sent)' "$TMP/events" | sed -n 2p)
check "only the rest of the layer went: $((lsize - 50000)) bytes ($line)" \
	eval "echo '$line' | grep -q ' $((lsize - 50000)) of '"
out=$("$SILO" exec "$id" -- cat /etc/marker 2>&1)
check "and it runs ($out)" test "$out" = "shipped from the hub"
"$SILO" rm --grace-ms 0 "$id" > /dev/null

# ---- a corrupted blob in the hub's cache ----
SILO_CACHE_DIR=$TMP/cache-edge SILO_SOCKET=$ESOCK "$SILO" image rm shipme > /dev/null 2>&1
rm -f "$TMP/edge/state/blobs/sha256/$lhex"
cp "$TMP/state/ship/blob-$lhex" "$TMP/good"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=0x40; open(p,"wb").write(b)' "$TMP/state/ship/blob-$lhex"
"$SILO" create --target edge --provider namespace --image shipme --name s4 --memory 256 > /dev/null 2> "$TMP/err"
check "a corrupted layer blob on the hub: the edge refuses it (CHECKSUM_MISMATCH naming the target)" \
	grep -q "CHECKSUM_MISMATCH.*target edge" "$TMP/err"
check "... and nothing of it is kept on the edge" \
	test "$(eapi GET "/v1/blobs/$lhex" | jget '(j["complete"], j["have"])')" = "(False, 0)"
check "... and no sandbox was created there" \
	test "$(curl -s --unix-socket "$ESOCK" http://silod/v1/sandboxes | jget 'len(j["sandboxes"])')" = 0
check "... and the hub dropped its bad copy" test ! -e "$TMP/state/ship/blob-$lhex"
id=$("$SILO" create --target edge --provider namespace --image shipme --name s5 --memory 256 2> "$TMP/err")
check "the next create makes the layer's tar again, ships it and runs ($(head -c 300 "$TMP/err"))" \
	eval "[ -n '$id' ] && [ \"\$('$SILO' exec '$id' -- cat /etc/marker 2>&1)\" = 'shipped from the hub' ]"
check "... the same bytes as the first time (the tar is deterministic)" cmp -s "$TMP/good" "$TMP/state/ship/blob-$lhex"
"$SILO" rm --grace-ms 0 "$id" > /dev/null

# ---- an edge with a keyring: a push needs a signature over its manifest by a trusted key ----
mhex= chex=
for f in "$TMP/state/ship"/blob-*; do
	grep -q schemaVersion "$f" 2> /dev/null && mhex=${f##*blob-}
	grep -q '"rootfs"' "$f" 2> /dev/null && chex=${f##*blob-}
done
"$SILO" trust keygen -p "$TMP/k.pub" -s "$TMP/k.sec" > /dev/null 2>&1 &&
	"$SILO" trust keygen -p "$TMP/rogue.pub" -s "$TMP/rogue.sec" > /dev/null 2>&1 &&
	SILO_STATE_DIR=$TMP/edge/state "$SILO" trust add-key "$TMP/k.pub" > /dev/null 2>&1
check "a key in the edge's keyring; the manifest and config blobs found ($mhex $chex)" \
	eval "[ -n '$mhex' ] && [ -n '$chex' ] && ls '$TMP/edge/state/keyring/'*.pub > /dev/null"
cp "$TMP/state/ship/blob-$mhex" "$TMP/manifest.json"
"$SILO" trust sign -s "$TMP/k.sec" -x "$TMP/good.minisig" "$TMP/manifest.json" > /dev/null 2>&1
"$SILO" trust sign -s "$TMP/rogue.sec" -x "$TMP/rogue.minisig" "$TMP/manifest.json" > /dev/null 2>&1
push_body() { # push_body [SIGFILE]
	python3 -c 'import json,sys
b={"name":"signed1","manifest":sys.argv[1],"blobs":[sys.argv[2],sys.argv[3]],"trees":[sys.argv[4]]}
if len(sys.argv)>5: b["signature"]=open(sys.argv[5]).read()
print(json.dumps(b))' "$mhex" "$chex" "$lhex" "$layer" "$@"
}
eapi POST /v1/images -H 'Content-Type: application/json' -d "$(push_body)" > /dev/null
expect_error "push to an edge with a keyring without a signature: PLUGIN_UNVERIFIED" 422 PLUGIN_UNVERIFIED signature
eapi POST /v1/images -H 'Content-Type: application/json' -d "$(push_body "$TMP/rogue.minisig")" > /dev/null
expect_error "... signed by a key the edge does not trust: PLUGIN_UNVERIFIED" 422 PLUGIN_UNVERIFIED
eapi POST /v1/images -H 'Content-Type: application/json' -d "$(push_body "$TMP/good.minisig")" > "$TMP/pushed"
check "... signed by the trusted key: imported (201, the layer's tree)" \
	eval "[ \"\$(cat '$TMP/status')\" = 201 ] && [ \"\$(jget 'j[\"layers\"][0][\"tree\"]' < '$TMP/pushed')\" = '$layer' ]"
eapi POST /v1/images -H 'Content-Type: application/json' -d "$(push_body "$TMP/good.minisig")" > /dev/null
expect_error "the same name again: CONFLICT" 409 CONFLICT signed1
"$SILO" target rm edge --force > /dev/null
stop_daemon
check_clean_exit "the hub silod exits 0 with no sanitizer report"
check "the edge's log has no sanitizer report" eval "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$TMP/edge/log'"
