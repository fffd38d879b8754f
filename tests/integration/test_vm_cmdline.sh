#!/usr/bin/env bash
# boot.cmdline through silod with a keyring (issue 21): a spec whose boot.cmdline
# chooses the root device (silo.root=/dev/vda, the unsigned drive it attaches) or
# init is refused with 422 CHECKSUM_MISMATCH naming boot.cmdline, emits a
# security-violation event and leaves a supply-chain audit record; nothing starts.
# The same signed images boot with a harmless cmdline (so the refusal is the
# command line's). Provider-level cases, and the keyless case (Silo's root wins):
# tests/integration/test_qemu_jail.c.
set -u
. "$(dirname "$0")/silod-lib.sh"
echo "1..8"
[ "$(id -u)" = 0 ] || { for i in $(seq 1 8); do echo "ok $i # SKIP the QEMU jail needs root"; done; exit 0; }
real_cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
[ -f "$real_cache/kernel/current/vmlinux" ] && [ -f "$real_cache/images/manifest.json" ] ||
	{ echo "# no kernel/images in $real_cache: run scripts/prepare-images.sh BUILD_DIR"; exit 1; }
cd "$TMP"
mkdir -p cache/images
ln -s "$real_cache/kernel" cache/kernel
cp "$real_cache/images/manifest.json" cache/images/manifest.json
export SILO_CACHE_DIR="$TMP/cache" SILO_KEYRING_DIR="$TMP/keyring"
"$SILO" trust keygen -p k.pub -s k.key > /dev/null
"$SILO" trust add-key k.pub > /dev/null
"$SILO" trust sign -s k.key > /dev/null
# the attacker's unsigned root: an ext4 with a marker
mkdir -p evil && echo pwned > evil/UNSIGNED-ROOT && truncate -s 16M evil.img && mkfs.ext4 -q -F -d evil evil.img
start_daemon || exit 1
spec() { # spec CMDLINE -> a create body (hac.toml in JSON)
	python3 -c 'import json,sys; print(json.dumps({"spec": "[vm]\nname = \"cmd\"\nprovider = \"qemu\"\n[resources]\nmemory_mb = 256\nvcpus = 1\n[boot]\nimage = \"base\"\ncmdline = \"%s\"\n[[drives]]\npath = \"%s\"\nread_only = true\n" % (sys.argv[1], sys.argv[2])}))' "$1" "$TMP/evil.img"
}
curl -s --max-time 30 --unix-socket "$SOCK" "http://silod/v1/events?types=security-violation&limit=1" > ev.json &
cpid=$!
sleep 0.3
api POST /v1/sandboxes -H 'Content-Type: application/json' -d "$(spec 'silo.root=/dev/vda')" > r1.json
code=$(status)
check "silo.root=/dev/vda with a keyring: 422 CHECKSUM_MISMATCH" bash -c "test '$code' = 422 && grep -q CHECKSUM_MISMATCH r1.json"
check "the error names boot.cmdline" grep -q 'boot.cmdline' r1.json
wait $cpid
check "a security-violation event names boot.cmdline" bash -c "grep -q security-violation ev.json && grep -q boot.cmdline ev.json"
check "the audit log has a supply-chain record for it" \
	bash -c "grep '\"event\":\"supply-chain\"' '$SILO_STATE_DIR/audit.jsonl' | grep -q boot.cmdline"
api POST /v1/sandboxes -H 'Content-Type: application/json' -d "$(spec 'quiet rdinit=/sbin/init')" > r2.json
check "rdinit= with a keyring: 422 naming boot.cmdline" bash -c "test '$(status)' = 422 && grep -q boot.cmdline r2.json"
check "nothing was started: no jailer of this test" bash -c "! pgrep -f '[s]ilo-jailer.*$TMP' > /dev/null"
# the same signed image and drive boot with a harmless command line
body=$(api POST /v1/sandboxes -H 'Content-Type: application/json' -d "$(spec 'loglevel=4')")
id=$(jget 'j.get("id","")' <<<"$body")
check "a harmless boot.cmdline boots the signed image (201)" bash -c "test '$(status)' = 201 && test -n '$id'"
[ -n "$id" ] && api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null
stop_daemon
check_clean_exit "silod exited cleanly (no sanitizer report)"
exit $FAILED
