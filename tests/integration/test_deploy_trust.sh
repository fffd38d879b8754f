#!/usr/bin/env bash
# Deployments and the keyring, against a real silod (namespace provider, real
# SQLite, private keyring and cache), each attack performed for real:
# `silo deploy NAME --bundle FILE` with an unsigned bundle, a bundle signed by a
# key that is not trusted, a bundle changed after signing, a stored bundle whose
# key was removed before a restart; an unsigned agent spec (agents/NAME.toml)
# and a spec signed by an untrusted key. Each is refused with PLUGIN_UNVERIFIED,
# audited ("plugin-unverified"), raised as a security-violation event and
# counted in silo_plugin_verification_failures_total. A good bundle is unpacked
# at /opt/agent and runs inside the sandbox.
. "$(dirname "$0")/silod-lib.sh"
EVPID=
trap 'echo "1..$N"; [ -n "$EVPID" ] && kill "$EVPID" 2>/dev/null; cleanup' EXIT
export SILO_KEYRING_DIR=$TMP/keyring SILO_CACHE_DIR=$TMP/cache
[ "$(id -u)" = 0 ] || skip_all "the namespace provider needs root"
command -v tar > /dev/null || skip_all "tar is needed to build bundles"
cd "$TMP" || exit 1
AG=$TMP/agents
mkdir -p "$AG"
for n in web plain; do
	cat > "$AG/$n.toml" <<EOF
[vm]
name = "$n"
provider = "namespace"

[resources]
vcpus = 1
memory_mb = 256
EOF
done
# the agent's code: a script, a library directory, a data file with an odd mode
mkdir -p app/lib
printf '#!/bin/sh\necho "agent $(cat /opt/agent/lib/version.txt) running"\n' > app/run.sh
chmod 0755 app/run.sh
echo v1.2.3 > app/lib/version.txt
chmod 0640 app/lib/version.txt
tar -C app -cf bundle.tar .

metric() { api GET /metrics | awk '/^silo_plugin_verification_failures_total /{print $2}'; }
audits() { grep -c '"event":"plugin-unverified"' "$SILO_STATE_DIR/audit.jsonl" 2>/dev/null || echo 0; }
start_daemon --agents-dir "$AG" --deploy-interval-ms 100 --restart-backoff-ms 200 --restart-backoff-max-ms 1000 ||
	{ notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
"$SILO" events --json > events.json 2>&1 &
EVPID=$!
sleep 0.2

# ---- no keyring: a bundle cannot be verified, so it is not deployed
"$SILO" trust keygen -p a.pub -s a.key > /dev/null
"$SILO" trust keygen -p b.pub -s b.key > /dev/null
"$SILO" trust keygen -p evil.pub -s evil.key > /dev/null
"$SILO" trust sign -s a.key bundle.tar > /dev/null
out=$("$SILO" deploy web --bundle bundle.tar 2>&1); rc=$?
check "no keyring: --bundle refused, PLUGIN_UNVERIFIED (nothing to verify against)" \
	bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*no trusted keys' <<<'$out'"
check "no keyring: no deployment row was written" test -z "$(sqlite3 "$SILO_STATE_DIR/registry.db" 'SELECT name FROM agent_deployments')"

# ---- keyring: key a signs the image manifest, key b the agent code
"$SILO" trust add-key a.pub > /dev/null
"$SILO" trust add-key b.pub > /dev/null
"$SILO" image build namespace --sign a.key > /dev/null || notok "build and sign the namespace base layer"

m0=$(metric) a0=$(audits)
out=$("$SILO" deploy plain 2>&1); rc=$?
check "keyring + unsigned agent spec: refused, PLUGIN_UNVERIFIED naming the file" \
	bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*agents/plain.toml is not signed' <<<'$out'"
check "... counted in silo_plugin_verification_failures_total" test "$(metric)" = $((m0 + 1))
check "... and audited as plugin-unverified (what: spec)" \
	bash -c "test $(audits) = $((a0 + 1)) && grep '\"plugin-unverified\"' '$SILO_STATE_DIR/audit.jsonl' | tail -1 | grep -q '\"what\":\"spec\"'"
"$SILO" trust sign -s evil.key "$AG/plain.toml" > /dev/null
out=$("$SILO" deploy plain 2>&1); rc=$?
check "agent spec signed by an untrusted key: refused" bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*not trusted' <<<'$out'"
"$SILO" trust sign -s b.key "$AG/plain.toml" > /dev/null
echo '# edited after signing' >> "$AG/plain.toml"
out=$("$SILO" deploy plain 2>&1); rc=$?
check "agent spec edited after signing: refused" bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*does not match' <<<'$out'"
cp "$AG/plain.toml" plain-inline.toml
out=$("$SILO" deploy inline -f plain-inline.toml 2>&1); rc=$?
check "a spec sent in the request without spec_signature: refused too" \
	bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*spec is not signed' <<<'$out'"
"$SILO" trust sign -s b.key "$AG/web.toml" > /dev/null

# ---- bundles: unsigned, wrong key, tampered
m0=$(metric) a0=$(audits)
rm -f bundle.tar.minisig
out=$("$SILO" deploy web --bundle bundle.tar 2>&1); rc=$?
check "unsigned bundle: refused by silod, PLUGIN_UNVERIFIED" bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*no signature' <<<'$out'"
"$SILO" trust sign -s evil.key bundle.tar > /dev/null
out=$("$SILO" deploy web --bundle bundle.tar 2>&1); rc=$?
check "bundle signed by an untrusted key: refused" bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*not trusted' <<<'$out'"
"$SILO" trust sign -s b.key bundle.tar > /dev/null
cp bundle.tar good.tar && cp bundle.tar.minisig good.tar.minisig
printf '#!/bin/sh\necho pwned\n' > app/run.sh
tar -C app -cf bundle.tar .
out=$("$SILO" deploy web --bundle bundle.tar 2>&1); rc=$?
check "bundle changed after signing: refused" bash -c "test $rc = 125 && grep -q 'PLUGIN_UNVERIFIED.*does not match' <<<'$out'"
check "three bundle refusals counted" test "$(metric)" = $((m0 + 3))
check "three bundle refusals audited" test "$(audits)" = $((a0 + 3))
rows=$(sqlite3 "$SILO_STATE_DIR/registry.db" 'SELECT name FROM agent_deployments')
live=$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')
check "nothing was deployed, no sandbox started" test "$rows|$live" = "|0"
check "no unverified bytes were stored" bash -c "! ls '$SILO_STATE_DIR/bundles' 2>/dev/null | grep -q ."

# ---- over HTTP: the body must hash to the path; a signed archive must still be well formed
sha=$(sha256sum good.tar | cut -d' ' -f1)
sig=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read()))' good.tar.minisig)
api PUT "/v1/bundles/$(printf '%064d' 0)?signature=$sig" --data-binary @good.tar > put.json
check "PUT with a body that does not hash to the path: 400" bash -c "test $(status) = 400 && grep -q 'the body has sha256' put.json"
ln -s /etc/shadow app/shadow
tar -C app -cf link.tar . && rm app/shadow
"$SILO" trust sign -s b.key link.tar > /dev/null
lsha=$(sha256sum link.tar | cut -d' ' -f1)
lsig=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read()))' link.tar.minisig)
api PUT "/v1/bundles/$lsha?signature=$lsig" --data-binary @link.tar > put.json
check "a signed bundle with a symlink: 400 INVALID_CONFIG naming the entry" \
	bash -c "test $(status) = 400 && grep -q 'shadow.*is a symlink' put.json"
api POST /v1/deployments -H 'Content-Type: application/json' -d "{\"name\":\"web\",\"bundle\":\"$(printf '%064d' 7)\"}" > dep.json
check "deploying a bundle that was never uploaded: 400" bash -c "test $(status) = 400 && grep -q 'was not uploaded' dep.json"

# ---- the good bundle: verified, unpacked at /opt/agent, runs
cp good.tar bundle.tar && cp good.tar.minisig bundle.tar.minisig
out=$("$SILO" deploy web --bundle bundle.tar --json 2>&1); rc=$?
check "signed bundle + signed spec: deployed" test $rc = 0
SB=$(jget 'j["sandbox_id"]' <<<"$out")
b=$(jget 'j["bundle"]["sha256"]+" "+j["bundle"]["dir"]+" "+j["bundle"]["key_id"]' <<<"$out")
check "the deployment names its bundle (sha256, dir, key)" \
	test "$b" = "$sha /opt/agent $(sed -n 1p b.pub | awk '{print $NF}')"
check "the registry row records the bundle" test "$(sqlite3 "$SILO_STATE_DIR/registry.db" "SELECT bundle FROM agent_deployments WHERE name='web'")" = "$sha"
out=$(exec_json "$SB" '{"argv":["/opt/agent/run.sh"]}' | ndjson_out)
check "the agent's code runs from /opt/agent inside the sandbox" test "$out" = "agent v1.2.3 running||0"
out=$(exec_json "$SB" '{"argv":["sh","-c","stat -c %a /opt/agent/run.sh /opt/agent/lib/version.txt | tr \"\\n\" \" \""]}' | ndjson_out)
check "file modes are kept" test "$out" = "755 640||0"
check "the unpack is audited (bundle-unpacked, 2 files)" \
	bash -c "grep '\"bundle-unpacked\"' '$SILO_STATE_DIR/audit.jsonl' | grep -q '\"files\":2'"

# ---- a restart re-verifies: the key that signed the bundle is removed, the agent dies
m0=$(metric) a0=$(audits)
"$SILO" trust rm-key "$(sed -n 1p b.pub | awk '{print $NF}')" > /dev/null
kill -KILL "$(api GET "/v1/sandboxes/$SB" | jget 'j["pid"]')"
for _ in $(seq 1 100); do [ "$(audits)" -gt "$a0" ] && break; sleep 0.1; done
check "restart after the signer's key was removed: bundle refused (audited with the sandbox)" \
	bash -c "grep '\"plugin-unverified\"' '$SILO_STATE_DIR/audit.jsonl' | tail -1 | grep -q '\"what\":\"bundle\"'"
check "... counted" test "$(metric)" -gt "$m0"
st=$(api GET /v1/deployments/web | jget 'j["state"]+" "+j.get("last_error","")')
check "... and the deployment is waiting in backoff with the reason" grep -q 'backoff.*PLUGIN_UNVERIFIED' <<<"$st"
# the refused sandbox is deleted after the refusal is audited (the bundle was never
# unpacked into it): it may still be listed for a moment, not for 10 s
live() { api GET '/v1/sandboxes?metadata=silo.deployment=web' | jget 'len(j["sandboxes"])'; }
for _ in $(seq 1 100); do [ "$(live)" = 0 ] && break; sleep 0.1; done
check "no sandbox of the deployment runs unverified code" test "$(live)" = 0
"$SILO" trust add-key b.pub > /dev/null
for _ in $(seq 1 100); do [ "$(api GET /v1/deployments/web | jget 'j["state"]')" = running ] && break; sleep 0.1; done
check "key trusted again: the deployment comes back with its bundle" \
	test "$(api GET /v1/deployments/web | jget 'j["state"]')" = running
kill "$EVPID" 2>/dev/null
EVPID=
check "security-violation events carry PLUGIN_UNVERIFIED and the deployment" \
	bash -c "grep 'security-violation' events.json | grep 'PLUGIN_UNVERIFIED' | grep -q '\"deployment\":\"web\"'"

# ---- undeploy: the bundle goes once nothing uses it and it is old
"$SILO" undeploy web --grace 0 > /dev/null
check "after undeploy a recent bundle is kept (for a deploy about to use it)" test -f "$SILO_STATE_DIR/bundles/$sha.tar"
touch -d '2 hours ago' "$SILO_STATE_DIR/bundles/$sha.tar"
"$SILO" trust sign -s b.key "$AG/web.toml" > /dev/null
"$SILO" deploy web > /dev/null && "$SILO" undeploy web --grace 0 > /dev/null
check "an unused bundle older than an hour is removed at the next undeploy" \
	bash -c "! ls '$SILO_STATE_DIR/bundles' | grep -q '$sha'"
stop_daemon
check_clean_exit "silod exited cleanly (no sanitizer report)"
exit $((FAILED > 0))
