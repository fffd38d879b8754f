#!/usr/bin/env bash
# The namespace base layer under a keyring, end to end through the real
# `silo run --provider namespace` and silod, in a private cache and keyring:
# an unsigned layer is refused; `silo image build namespace --sign KEY` records
# and signs it; then each tampering attack on the layer (a file changed in
# place, added, removed, a mode changed, a symlink swapped) is refused with
# CHECKSUM_MISMATCH and the restored layer runs again; a boot.rootfs directory
# needs `silo image add-tree`; the manifest cannot be rolled back; silod answers
# 422 with a security-violation event and a supply-chain audit record. TAP.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
SILO="$B/cli/silo"
. "$(dirname "$0")/../tap.sh"
[[ $(id -u) = 0 ]] || skip_all "the namespace provider needs root"
TMP=$(mktemp -d /tmp/silo-trust-ns.XXXXXX)
DPID=
trap '[[ -n "$DPID" ]] && kill -KILL $DPID 2>/dev/null; [[ -n "${KEEP:-}" ]] || rm -rf "$TMP"; echo "1..$N"' EXIT
export SILO_KEYRING_DIR="$TMP/keyring" SILO_CACHE_DIR="$TMP/cache" SILO_RUNTIME_DIR="$TMP/run" \
	SILO_STATE_DIR="$TMP/state"
unset SILO_HOST SILO_SOCKET SILO_API_TOKEN
cd "$TMP" || exit 1
run() { timeout 60 "$SILO" run --provider namespace "$@" -- echo ran 2>&1; }
refused() { # refused DESCRIPTION PATTERN: the last run failed with 125 and the pattern
	check "$1" bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*$2' <<<\"\$0\"" "$out"
}
runs() { check "$1" bash -c "test $rc = 0 && grep -qx ran <<<\"\$0\"" "$out"; }

out=$(run); rc=$?
runs "no keyring: the namespace sandbox runs"
"$SILO" trust keygen -p k.pub -s k.key > /dev/null && "$SILO" trust add-key k.pub > /dev/null
out=$(run); rc=$?
refused "keyring, no signed manifest: refused" "image manifest cannot be read"
out=$("$SILO" image build namespace --sign k.key 2>&1); rc=$?
check "silo image build namespace --sign records the layer and signs the manifest" \
	bash -c "test $rc = 0 && grep -q 'namespace tree' <<<\"\$0\" && grep -q 'version [0-9]*, expires' <<<\"\$0\"" "$out"
L=$(python3 -c 'import json,sys; print([t["path"] for t in json.load(open(sys.argv[1]))["trees"] if t["name"]=="namespace"][0])' \
	cache/images/manifest.json)
check "the manifest lists the layer under trees" test -d "$L"
out=$(run); rc=$?
runs "signed layer: runs"

# ---- the attacks on the layer itself
cp "$L/etc/passwd" passwd.orig
echo 'evil:x:0:0::/:/bin/sh' >> "$L/etc/passwd"
out=$(run); rc=$?
refused "a file of the layer changed: refused" "has digest"
cp passwd.orig "$L/etc/passwd"
touch -r passwd.orig "$L/etc/passwd"
out=$(run); rc=$?
runs "restored: runs"
# same size, mtime restored: only the ctime tells
printf 'R' | dd of="$L/etc/passwd" bs=1 seek=0 conv=notrunc status=none
touch -r passwd.orig "$L/etc/passwd"
out=$(run); rc=$?
refused "changed in place with the same size and mtime: refused" "has digest"
cp passwd.orig "$L/etc/passwd"
echo '#!/bin/sh' > "$L/bin/backdoor"
out=$(run); rc=$?
refused "a file added: refused" "has digest"
rm "$L/bin/backdoor"
mv "$L/etc/hosts" hosts.orig
out=$(run); rc=$?
refused "a file removed: refused" "has digest"
mv hosts.orig "$L/etc/hosts"
chmod 4755 "$L/bin/busybox"
out=$(run); rc=$?
refused "a mode changed (setuid busybox): refused" "has digest"
chmod 755 "$L/bin/busybox"
ln -s /proc/self/root/tmp/x "$L/bin/cat.new" && mv -T "$L/bin/cat.new" "$L/bin/cat"
out=$(run); rc=$?
refused "a symlink swapped: refused" "has digest"
ln -s /bin/busybox "$L/bin/cat.new" && mv -T "$L/bin/cat.new" "$L/bin/cat"
out=$(run); rc=$?
runs "everything restored: runs again"

# ---- a boot.rootfs directory is covered the same way
cp -a "$L" myroot
cat > spec.toml <<EOF
[vm]
name = "rootfs"
provider = "namespace"
[boot]
rootfs = "$TMP/myroot"
EOF
out=$(timeout 60 "$SILO" run --spec spec.toml -- echo ran 2>&1); rc=$?
refused "an unrecorded boot.rootfs directory: refused" "is not listed in the signed image manifest"
cp cache/images/manifest.json v1.json && cp cache/images/manifest.json.minisig v1.minisig
"$SILO" image add-tree myroot "$TMP/myroot" --sign k.key > /dev/null
out=$(timeout 60 "$SILO" run --spec spec.toml -- echo ran 2>&1); rc=$?
runs "silo image add-tree + sign: the boot.rootfs runs"
echo x >> myroot/etc/os-release
out=$(timeout 60 "$SILO" run --spec spec.toml -- echo ran 2>&1); rc=$?
refused "the boot.rootfs changed after signing: refused" "has digest"

# ---- the manifest cannot be rolled back to before myroot was recorded
cp v1.json cache/images/manifest.json && cp v1.minisig cache/images/manifest.json.minisig
out=$(run); rc=$?
refused "older signed manifest put back: refused" "rollback refused"
"$SILO" trust sign -s k.key > /dev/null
out=$(run); rc=$?
runs "a newly signed version: runs"

# ---- through silod: 422, a security-violation event, a supply-chain audit record
mkdir -p "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR"
"$B/daemon/silod" > silod.log 2>&1 &
DPID=$!
for _ in $(seq 1 200); do [[ -S run/silod.sock ]] && break; sleep 0.05; done
echo 'evil:x:0:0::/:/bin/sh' >> "$L/etc/passwd"
curl -s --max-time 20 --unix-socket run/silod.sock "http://silod/v1/events?types=security-violation&limit=1" > ev.json &
cpid=$!
sleep 0.3
code=$(curl -s -o create.json -w '%{http_code}' --unix-socket run/silod.sock -H 'Content-Type: application/json' \
	-d '{"provider":"namespace","name":"t","memory_mb":256}' http://silod/v1/sandboxes)
check "silod create on a tampered layer: 422 CHECKSUM_MISMATCH" \
	bash -c "test '$code' = 422 && grep -q 'CHECKSUM_MISMATCH' create.json && grep -q 'has digest' create.json"
wait $cpid
check "a security-violation event names the supply chain" bash -c "grep -q 'security-violation' ev.json && grep -q 'supply chain' ev.json"
check "the audit log has a supply-chain record" grep -q '"event":"supply-chain"' state/audit.jsonl
cp passwd.orig "$L/etc/passwd"
code=$(curl -s -o create.json -w '%{http_code}' --unix-socket run/silod.sock -H 'Content-Type: application/json' \
	-d '{"provider":"namespace","name":"t2","memory_mb":256}' http://silod/v1/sandboxes)
check "restored layer: silod creates the sandbox" test "$code" = 201
id=$(python3 -c 'import json,sys; print(json.load(open("create.json")).get("id",""))')
[[ -n "$id" ]] && curl -s --unix-socket run/silod.sock -X DELETE "http://silod/v1/sandboxes/$id?grace_ms=0" > /dev/null
kill -TERM $DPID; wait $DPID
rc=$?
DPID=
check "silod exited cleanly (no sanitizer report)" bash -c "test $rc = 0 && ! grep -qE 'Sanitizer|runtime error' silod.log"
exit $((FAILED > 0))
