#!/usr/bin/env bash
# `silo trust` end to end with the real minisign tool, in a private cache and
# keyring: keys made by minisign and by silo, signatures made by each and
# verified by the other, the keyring, bundles, and the signed-manifest check
# before a real QEMU boot (a copy of the "base" image in a private cache):
# unsigned or tampered manifests and unlisted kernels are refused with
# CHECKSUM_MISMATCH naming the file; a signed manifest boots. TAP on stdout.
set -uo pipefail
. "$(dirname "$0")/signed-cache-lib.sh"   # TAP helpers, SILO, real_cache, private dirs
if ! command -v minisign > /dev/null; then echo "1..0 # SKIP minisign not installed"; exit 0; fi
private_dirs silo-trust-test

# ---- keys and signatures, both directions
minisign -G -W -p m.pub -s m.key > /dev/null 2>&1
"$SILO" trust keygen -p s.pub -s s.key > keygen.out
check "silo trust keygen writes a key pair" test -s s.pub -a -s s.key
check "secret key is 0600" test "$(stat -c %a s.key)" = 600
out=$("$SILO" trust list)
check "empty keyring lists 0 keys" grep -q ': 0 keys' <<<"$out"
"$SILO" trust add-key m.pub > /dev/null && "$SILO" trust add-key s.pub > /dev/null
check "two keys trusted" test "$("$SILO" trust list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2
mid=$(sed -n 1p m.pub | awk '{print $NF}')
check "the keyring names minisign's key by the id minisign prints" bash -c "\"$SILO\" trust list | grep -q '$mid'"
err=$("$SILO" trust add-key keygen.out 2>&1); rc=$?
check "add-key of a non-key fails with INVALID_CONFIG" bash -c "test $rc = 125 && grep -q INVALID_CONFIG <<<'$err'"

echo "some artifact" > art
minisign -S -W -s m.key -m art -t 'built by ci' > /dev/null 2>&1
out=$("$SILO" trust verify art)
check "silo verifies a minisign (prehashed) signature" grep -q "built by ci" <<<"$out"
minisign -S -l -W -s m.key -m art -x art.legacy > /dev/null 2>&1
check "silo verifies a minisign legacy signature" bash -c "\"$SILO\" trust verify -x art.legacy art | grep -q 'legacy Ed'"
"$SILO" trust sign -s s.key -t 'signed by silo' art > /dev/null
check "minisign verifies silo's signature" minisign -V -q -p s.pub -m art
"$SILO" trust sign -s m.key -l -x art.silo-legacy art > /dev/null
check "minisign verifies silo's legacy signature made with minisign's key" minisign -V -q -p m.pub -m art -x art.silo-legacy
echo "some artifact!" > art
err=$("$SILO" trust verify art 2>&1); rc=$?
check "a changed file fails: exit 125 CHECKSUM_MISMATCH" bash -c "test $rc = 125 && grep -q CHECKSUM_MISMATCH <<<'$err'"
check "minisign agrees" bash -c "! minisign -V -q -p s.pub -m art 2>/dev/null"
"$SILO" trust rm-key "$(sed -n 1p s.pub | awk '{print $NF}')" > /dev/null
"$SILO" trust sign -s s.key art > /dev/null
err=$("$SILO" trust verify art 2>&1)
check "after rm-key the key's signatures are not trusted" grep -q "not trusted" <<<"$err"
check "verify -p PUB checks against one key" bash -c "\"$SILO\" trust verify -p s.pub art > /dev/null"

# ---- bundles
echo "agent bundle" > bundle.tar
err=$("$SILO" trust verify-bundle bundle.tar 2>&1); rc=$?
check "unsigned bundle: PLUGIN_UNVERIFIED" bash -c "test $rc = 125 && grep -q PLUGIN_UNVERIFIED <<<'$err'"
minisign -S -W -s m.key -m bundle.tar > /dev/null 2>&1
check "bundle signed by a trusted key verifies" bash -c "\"$SILO\" trust verify-bundle bundle.tar > /dev/null"
minisign -S -W -s s.key -m bundle.tar > /dev/null 2>&1
err=$("$SILO" trust verify-bundle bundle.tar 2>&1)
check "bundle signed by an untrusted key: PLUGIN_UNVERIFIED" grep -q "PLUGIN_UNVERIFIED.*not trusted" <<<"$err"

# ---- signed manifest before a real boot
if [[ "${SILO_SKIP_VM_TESTS:-}" == 1 || ! -f "$real_cache/kernel/current/vmlinux" ||
	! -f "$real_cache/images/base/initramfs.cpio.gz" ]]; then
	echo "# kernel or base image missing (scripts/prepare-images.sh $B): boot checks not run"
	notok "boot checks need the kernel and base image"
	exit 1
fi
cache_layout "$real_cache" link
"$SILO" trust add-key s.pub > /dev/null
run() { timeout 120 "$SILO" run --provider qemu --image base -- echo booted 2>&1; }
out=$(run); rc=$?
check "keyring + unsigned manifest: boot refused (125, CHECKSUM_MISMATCH, not signed)" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*not signed' <<<'$out'"
out=$("$SILO" trust check-boot --image base 2>&1)
check "silo trust check-boot reports the same" grep -q "not signed" <<<"$out"
minisign -S -W -s m.key -m cache/images/manifest.json > /dev/null 2>&1
out=$(run); rc=$?
check "keyring + unversioned signature (plain minisign -S): refused, told how to sign" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*has no version' <<<'$out'"
minisign -S -W -s m.key -m cache/images/manifest.json -t "version:10 expires:$(($(date +%s) + 86400))" > /dev/null 2>&1
out=$(run); rc=$?
check "manifest signed with minisign (version 10): the VM boots" bash -c "test $rc = 0 && grep -qx booted <<<'$out'"
[[ $rc -ne 0 ]] && echo "$out" | tail -5 | sed 's/^/# /'
check "silo trust verify (default: the image manifest) passes" bash -c "\"$SILO\" trust verify > /dev/null"
# an edited manifest (here: a changed created date) no longer matches its signature
sed -i 's/2026-01-01/2026-01-02/' cache/images/manifest.json
out=$(run); rc=$?
check "manifest edited after signing: refused" bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*does not match' <<<'$out'"
"$SILO" trust sign -s s.key > sign.out
out=$(run); rc=$?
check "re-signed with silo trust sign: boots" test $rc = 0
check "silo trust sign versions the manifest" grep -q 'version [0-9]*, expires' sign.out
# rollback: keep this release (v1), sign the next one (v2) and boot it, then put v1 back
cp cache/images/manifest.json v1.json && cp cache/images/manifest.json.minisig v1.minisig
sed -i 's/2026-01-02/2026-01-03/' cache/images/manifest.json
"$SILO" trust sign -s s.key > /dev/null
out=$(run); rc=$?
check "release v2 signed and booted" test $rc = 0
cp v1.json cache/images/manifest.json && cp v1.minisig cache/images/manifest.json.minisig
out=$(run); rc=$?
check "rollback to the older signed v1 (valid signature): refused, CHECKSUM_MISMATCH naming why" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*older than version.*rollback refused' <<<'$out'"
out=$("$SILO" trust check-boot --image base 2>&1)
check "silo trust check-boot refuses the rollback too" grep -q "rollback refused" <<<"$out"
sed -i 's/2026-01-0[0-9]/2026-01-04/' cache/images/manifest.json
"$SILO" trust sign -s s.key --expires 2s > /dev/null
sleep 3
out=$(run); rc=$?
check "an expired signature: refused" bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*expired at' <<<'$out'"
"$SILO" trust sign -s s.key > /dev/null
# a kernel that is not in the signed manifest
cp cache/kernel/current/vmlinux other-vmlinux
out=$(SILO_KERNEL="$TMP/other-vmlinux" run); rc=$?
check "an unlisted kernel is refused, named in the error" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*other-vmlinux is not listed' <<<'$out'"
# through silod: refused with 422, a security-violation event and a supply-chain audit record
sed -i 's/2026-01-0[0-9]/2026-01-09/' cache/images/manifest.json
mkdir -p "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR"
"$B/daemon/silod" > silod.log 2>&1 &
dpid=$!
for _ in $(seq 1 200); do [[ -S run/silod.sock ]] && break; sleep 0.05; done
curl -s --max-time 20 --unix-socket run/silod.sock "http://silod/v1/events?types=security-violation&limit=1" > ev.json &
cpid=$!
sleep 0.3
code=$(curl -s -o create.json -w '%{http_code}' --unix-socket run/silod.sock -H 'Content-Type: application/json' \
	-d '{"provider":"qemu","image":"base"}' http://silod/v1/sandboxes)
check "silod create: 422 CHECKSUM_MISMATCH" bash -c "test '$code' = 422 && grep -q CHECKSUM_MISMATCH create.json"
wait $cpid
check "silod emitted a security-violation event naming the supply chain" \
	bash -c "grep -q 'security-violation' ev.json && grep -q 'supply chain' ev.json"
check "the audit log has a supply-chain record" grep -q '"event":"supply-chain"' state/audit.jsonl
# (should nothing have been refused: do not leave the VM behind)
for id in $(curl -s --unix-socket run/silod.sock http://silod/v1/sandboxes | python3 -c '
import json, sys; [print(s["id"]) for s in json.load(sys.stdin)["sandboxes"]]'); do
	curl -s --unix-socket run/silod.sock -X DELETE "http://silod/v1/sandboxes/$id?grace_ms=0" > /dev/null
done
kill -TERM $dpid; wait $dpid
check "silod exited cleanly (no sanitizer report)" bash -c "test $? = 0 && ! grep -qE 'Sanitizer|runtime error' silod.log"
check "no QEMU (nor its jailer) left running from this test" bash -c "! pgrep -f '[s]ilo-jailer.*$TMP' > /dev/null && ! pgrep -f '[q]emu-system.*$TMP' > /dev/null"
exit $FAILED
