#!/usr/bin/env bash
# `silo config` through the real binary (TAP).
set -u
SILO="$SILO_BUILD_ROOT/cli/silo"
EX="$SILO_SOURCE_ROOT/examples"
T=$(mktemp -d /tmp/silo-config-XXXXXX)
trap 'rm -rf "$T"' EXIT
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n - $1"; }
no() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n - $1"; }
echo "1..11"
out=$("$SILO" config validate "$EX/sectioned.toml" "$EX/vistara.toml" 2>&1) && [[ "$out" == *"py-agent"* && "$out" == *"edge-agent"* ]] && ok "validate accepts both forms" || no "validate accepts both forms: $out"
printf '[vm]\nname = "x"\n[resources]\nvcpus = "four"\n' > "$T/bad.toml"
out=$("$SILO" config validate "$T/bad.toml" 2>&1); rc=$?
[ $rc -eq 125 ] && [[ "$out" == *"INVALID_CONFIG"*"bad.toml: 4:9: resources.vcpus: expected integer 1-64, got string"* ]] && ok "validate names file, line:col and field" || no "validate error: rc=$rc $out"
out=$("$SILO" config validate --json "$T/bad.toml" "$EX/vistara.toml"); rc=$?
[ $rc -eq 125 ] && python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r[0]["valid"] is False and r[0]["code"]=="INVALID_CONFIG" and r[1]["valid"] is True' "$out" && ok "validate --json" || no "validate --json: $out"
"$SILO" config format "$EX/vistara.toml" > "$T/f1.toml" && "$SILO" config format "$T/f1.toml" > "$T/f2.toml" && cmp -s "$T/f1.toml" "$T/f2.toml" && grep -q '^\[vm\]' "$T/f1.toml" && ok "format is canonical and idempotent" || no "format idempotent"
cp "$EX/sectioned.toml" "$T/w.toml" && "$SILO" config format --write "$T/w.toml" && "$SILO" config validate "$T/w.toml" >/dev/null && ! grep -q '^#' "$T/w.toml" && ok "format --write rewrites in place" || no "format --write"
for p in kvm qemu namespace; do "$SILO" config default $p > "$T/$p.toml" || break; done
"$SILO" config validate "$T/kvm.toml" "$T/qemu.toml" "$T/namespace.toml" >/dev/null && grep -q 'vcpus = 2' "$T/qemu.toml" && grep -q 'memory_mb = 512' "$T/namespace.toml" && ok "default templates validate" || no "default templates"
out=$("$SILO" config default xen 2>&1); [ $? -eq 125 ] && [[ "$out" == *INVALID_CONFIG* ]] && ok "default rejects unknown provider" || no "default unknown provider: $out"
out=$("$SILO" config validate /nonexistent.toml 2>&1); [ $? -eq 125 ] && [[ "$out" == *IO_ERROR*"nonexistent.toml"* ]] && ok "missing file is IO_ERROR" || no "missing file: $out"
cpus=$(nproc)
printf '[vm]\nname = "big"\n[resources]\nvcpus = %d\n' $((cpus + 1)) > "$T/big.toml"
out=$("$SILO" config validate --capacity "$T/big.toml" 2>&1); rc=$?
[ $rc -ne 0 ] && [[ "$out" == *RESOURCE_EXCEEDED*"vcpus: $((cpus + 1)) requested but the host has $cpus cores"* ]] && "$SILO" config validate "$T/big.toml" >/dev/null \
  && ok "validate --capacity checks host cores" || no "validate --capacity: rc=$rc $out"
cp "$T/bad.toml" "$T/bad2.toml"
out=$("$SILO" config format --write "$T/bad2.toml" 2>&1); rc=$?
[ $rc -eq 125 ] && cmp -s "$T/bad.toml" "$T/bad2.toml" && [[ "$out" == *"4:9: resources.vcpus"* ]] && ok "format --write leaves an invalid file untouched" || no "format --write on invalid: rc=$rc $out"
"$SILO" config validate >/dev/null 2>&1; r1=$?; "$SILO" config bogus >/dev/null 2>&1; r2=$?
[ $r1 -eq 2 ] && [ $r2 -eq 2 ] && ok "usage errors exit 2" || no "usage errors: $r1 $r2"
exit 0
