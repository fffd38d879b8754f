#!/usr/bin/env bash
# Secrets end to end against a real silod (namespace provider, real SQLite):
# sandboxes get secrets from the CLI (--secret, --secret K from the CLI's
# environment, --secret-file), over HTTP (inline, {"file"}, {"env"} of silod),
# from hac.toml ([sandbox.secrets]) and through `silo run`; every command inside
# sees them (echo $NAME prints the value) while inspect/GET show "***", and after
# creates, execs, a snapshot, a restore, a fork, a deployment and a silod restart
# no file silod wrote (state dir with registry.db and its WAL, audit.jsonl,
# cleanup records, snapshots, bundles; the runtime dir; its log) contains any
# value. A restarted silod re-reads file/env secrets and refuses execs that need
# a lost inline one; scoped tokens cannot name silod's files or variables unless
# a policy grants them; embedded `silo run` leaves nothing either.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
[ "$(id -u)" = 0 ] || skip_all "the namespace provider needs root"
cd "$TMP" || exit 1
val() { echo "sv$1-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }
V_CLI=$(val cli) V_CLIENV=$(val clienv) V_FILE=$(val file) V_HTTP=$(val http) V_SILODENV=$(val silodenv)
V_TOML=$(val toml) V_TOMLCLI=$(val tomlcli) V_RUN=$(val run) V_EMB=$(val emb) V_TOK=$(val tok)
V_MARK=$(val mark) V_MARKRUN=$(val markrun)
ALL=("$V_CLI" "$V_CLIENV" "$V_FILE" "$V_HTTP" "$V_SILODENV" "$V_TOML" "$V_TOMLCLI" "$V_RUN" "$V_EMB" "$V_TOK"
	"$V_MARK" "$V_MARKRUN")
mkdir -p secrets && printf '%s\n' "$V_FILE" > secrets/db && chmod 600 secrets/db
# nowhere that silod writes may hold a value
leaks() { # leaks DIR... -> the files that contain any secret value
	local pats=() v
	for v in "${ALL[@]}"; do pats+=(-e "$v"); done
	grep -r -a -l -F "${pats[@]}" "$@" 2>/dev/null
}
ex() { # ex ID SHELL-COMMAND [extra json] -> "stdout|stderr|exit"
	exec_json "$1" "{\"argv\":[\"sh\",\"-c\",\"$2\"]${3:-}}" | ndjson_out
}

export SILO_TEST_SECRET_ENV=$V_SILODENV
start_daemon --deploy-interval-ms 100 || { notok "silod starts"; exit 1; }
unset SILO_TEST_SECRET_ENV
namespace_available || skip_all "namespace provider unavailable here"
"$SILO" events --json > "$SILO_STATE_DIR/../events.log" 2>&1 &
EVPID=$!
trap 'echo "1..$N"; kill $EVPID 2>/dev/null; cleanup' EXIT

# ---- the CLI: --secret K=V, --secret K (from here), --secret-file K=PATH
export CLI_ENV_SECRET=$V_CLIENV
A=$("$SILO" create --provider namespace --name a --memory 256 --secret API_KEY="$V_CLI" --secret CLI_ENV_SECRET \
	--secret-file DB_PASSWORD=secrets/db -e PLAIN=visible)
unset CLI_ENV_SECRET
check "silo create with --secret/--secret-file" test -n "$A"
check "echo \$API_KEY inside prints the value" test "$(ex "$A" 'echo $API_KEY')" = "$V_CLI||0"
check "--secret NAME takes the CLI's \$NAME" test "$(ex "$A" 'echo $CLI_ENV_SECRET')" = "$V_CLIENV||0"
check "--secret-file: the file's content (trailing newline dropped)" test "$(ex "$A" 'printf %s \"$DB_PASSWORD\"')" = "$V_FILE||0"
check "plain env and secrets together" test "$(ex "$A" 'echo $PLAIN')" = "visible||0"
"$SILO" inspect "$A" > inspect.json
check "silo inspect shows *** and no value" bash -c "grep -q '\\*\\*\\*' inspect.json && ! grep -qF -e '$V_CLI' -e '$V_FILE' -e '$V_CLIENV' inspect.json"
check "GET names each secret's source, never its value" \
	test "$(jget 'j["secrets"]["API_KEY"]["value"]+" "+j["secrets"]["API_KEY"]["source"]+" "+str(j["secrets"]["DB_PASSWORD"]["available"])' < inspect.json)" = "*** value True"

# ---- marking an env value secret: -e NAME=... --secret NAME
M=$("$SILO" create --provider namespace --name m --memory 256 -e MARKED="$V_MARK" --secret MARKED -e OTHER=o)
check "-e NAME=V --secret NAME: the value becomes a secret" test "$(ex "$M" 'echo $MARKED $OTHER')" = "$V_MARK o||0"
"$SILO" inspect "$M" > inspect-m.json
jget 'j["spec"]' < inspect-m.json > spec-m.toml
check "... and is not in the spec's env, nor anywhere in inspect" \
	bash -c "! grep -qF '$V_MARK' inspect-m.json && grep -qx 'MARKED = \"\*\*\*\"' spec-m.toml && ! grep -q '^MARKED = \"sv' spec-m.toml"
out=$("$SILO" run --provider namespace -e RM="$V_MARKRUN" --secret RM -- sh -c 'echo $RM' 2>&1)
check "silo run -e NAME=V --secret NAME" test "$out" = "$V_MARKRUN"

# ---- HTTP: inline, a file of silod's host, a variable of silod's environment
B=$(api POST /v1/sandboxes -H 'Content-Type: application/json' -d "{\"provider\":\"namespace\",\"name\":\"b\",\"memory_mb\":256,
	\"secrets\":{\"TOKEN\":\"$V_HTTP\",\"FROM_ENV\":{\"env\":\"SILO_TEST_SECRET_ENV\"},\"FROM_FILE\":{\"file\":\"$TMP/secrets/db\"}}}" |
	jget 'j.get("id","")')
check "POST /v1/sandboxes with secrets: inline, env, file" test -n "$B"
check "all three reach the command" test "$(ex "$B" 'echo $TOKEN $FROM_ENV $FROM_FILE')" = "$V_HTTP $V_SILODENV $V_FILE||0"
check "the create response shows none of them" bash -c "! grep -qF -e '$V_HTTP' -e '$V_SILODENV' '$TMP/body'"
api POST /v1/sandboxes -H 'Content-Type: application/json' \
	-d '{"provider":"namespace","name":"x","secrets":{"S":{"file":"/nonexistent/secret"}}}' > err.json
check "a missing secret file: 400 naming the secret" bash -c "test $(status) = 400 && grep -q 'sandbox.secrets.S' err.json"
api POST /v1/sandboxes -H 'Content-Type: application/json' \
	-d '{"provider":"namespace","name":"x","env":{"K":"a"},"secrets":{"K":"b"}}' > err.json
check "a name both in env and in secrets: 400" bash -c "test $(status) = 400 && grep -q 'also given in sandbox.env' err.json"

# ---- hac.toml: [sandbox.secrets], plus --secret next to -f
cat > spec.toml <<EOF
[vm]
name = "c"
provider = "namespace"

[resources]
memory_mb = 256

[sandbox.secrets]
INLINE = "$V_TOML"
FROM_FILE = {file = "$TMP/secrets/db"}
FROM_ENV = {env = "SILO_TEST_SECRET_ENV"}
EOF
C=$("$SILO" create -f spec.toml --secret EXTRA="$V_TOMLCLI")
check "silo create -f spec.toml --secret" test -n "$C"
check "[sandbox.secrets] (inline, file, env) and --secret reach the command" \
	test "$(ex "$C" 'echo $INLINE $FROM_FILE $FROM_ENV $EXTRA')" = "$V_TOML $V_FILE $V_SILODENV $V_TOMLCLI||0"
"$SILO" inspect "$C" | jget 'j["spec"]' > spec-shown.toml
check "the stored spec shows the inline value as \"***\" and the references as they are" \
	bash -c "grep -qx 'INLINE = \"\\*\\*\\*\"' spec-shown.toml && grep -q 'FROM_FILE = {file = ' spec-shown.toml && grep -q 'FROM_ENV = {env = \"SILO_TEST_SECRET_ENV\"}' spec-shown.toml"
out=$("$SILO" create -f spec-shown.toml 2>&1); rc=$?
check "creating from a shown spec again: the redacted value is refused, not used" \
	bash -c 'test "$1" = 125 && grep -q "INLINE: the value was redacted" <<<"$2"' _ "$rc" "$out"

# ---- silo run through silod
out=$("$SILO" run --provider namespace --secret RUNSEC="$V_RUN" -- sh -c 'echo $RUNSEC' 2>&1)
check "silo run --secret through silod" test "$out" = "$V_RUN"

# ---- snapshot, restore, fork (of C: inline, file and env secrets)
SNAP=$("$SILO" snapshot "$C" --json | jget 'j["id"]')
check "snapshot of a sandbox with secrets" test -n "$SNAP"
R=$("$SILO" restore "$SNAP" --json | jget 'j.get("id","")')
check "restored" test -n "$R"
out=$(ex "$R" 'echo $INLINE')
check "restore: an inline secret was never in the snapshot: the exec is refused naming it (409)" \
	bash -c 'grep -q CONFLICT <<<"$1" && grep -q "secret INLINE is not available" "$2"' _ "$out" "$TMP/body"
check "restore: file and env secrets are read again (the exec passes the inline ones)" \
	test "$(ex "$R" 'echo $FROM_FILE $FROM_ENV' ',"env":{"INLINE":"i","EXTRA":"e"}')" = "$V_FILE $V_SILODENV||0"
F=$("$SILO" fork "$C" -n 1 --json | jget 'j["sandboxes"][0]')
check "fork: the copy keeps the inline secrets (carried in memory)" test "$(ex "$F" 'echo $INLINE $EXTRA')" = "$V_TOML $V_TOMLCLI||0"

# ---- deployments: inline values cannot survive a restart, so they are refused; files work
mkdir -p agents
printf '[vm]\nname = "d"\nprovider = "namespace"\n[resources]\nmemory_mb = 256\n[sandbox.secrets]\nK = "%s"\n' "$V_TOML" > d1.toml
api POST /v1/deployments -H 'Content-Type: application/json' -d "$(python3 -c 'import json,sys; print(json.dumps({"name":"d1","spec":open("d1.toml").read()}))')" > dep.json
check "deploy with an inline secret: 400, told to use a file or variable" \
	bash -c "test $(status) = 400 && grep -q 'sandbox.secrets.K: a deployment restarts' dep.json && ! grep -qF '$V_TOML' dep.json"
printf '[vm]\nname = "d"\nprovider = "namespace"\n[resources]\nmemory_mb = 256\n[sandbox.secrets]\nK = {file = "%s"}\n' "$TMP/secrets/db" > d2.toml
D=$("$SILO" deploy d2 -f d2.toml --json | jget 'j.get("sandbox_id","")')
check "deploy with a file secret: the agent sees it" test "$(ex "$D" 'echo $K')" = "$V_FILE||0"

# ---- silod restart: files and variables are read again, inline values are gone
stop_daemon
export SILO_TEST_SECRET_ENV=$V_SILODENV
start_daemon --deploy-interval-ms 100 || notok "silod restarts"
unset SILO_TEST_SECRET_ENV
check "after a restart: a {file} secret is read again" \
	test "$(ex "$C" 'echo $FROM_FILE' ',"env":{"INLINE":"i","EXTRA":"e"}')" = "$V_FILE||0"
check "after a restart: an {env} secret of silod is read again" test "$(ex "$B" 'echo $FROM_ENV' ',"env":{"TOKEN":"t"}')" = "$V_SILODENV||0"
out=$(ex "$A" 'echo $API_KEY')
check "after a restart: an exec needing a lost inline secret is refused (409), naming it" \
	bash -c 'grep -q CONFLICT <<<"$1" && grep -q "secret API_KEY is not available.*inline" "$2"' _ "$out" "$TMP/body"
check "... the exec can pass it itself (--secret-file values are inline too: read by the CLI)" \
	test "$(ex "$A" 'echo $API_KEY' ',"env":{"API_KEY":"again","CLI_ENV_SECRET":"y","DB_PASSWORD":"z"}')" = "again||0"
check "... and GET says it is not available" test "$(api GET "/v1/sandboxes/$A" | jget 'str(j["secrets"]["API_KEY"]["available"])')" = False
grep -q "secret API_KEY is not available after the restart" "$TMP/silod.log" && ok "silod logs which secrets were lost" ||
	notok "silod logs which secrets were lost"

# ---- scoped tokens: silod's files and variables only where a policy grants them
stop_daemon
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOK=$("$SILO" token create --file tokens.toml --name agent --operations create,exec,inspect,delete)
TOK2=$("$SILO" token create --file tokens.toml --name granted --operations create,exec,inspect,delete --policy secretfiles)
printf 'default = "open"\n[policies.open]\n[policies.secretfiles]\nhost_paths = ["%s/secrets"]\nhost_env = ["SILO_TEST_*"]\n' "$TMP" > policies.toml
export SILO_TEST_SECRET_ENV=$V_SILODENV
start_daemon --listen "127.0.0.1:$PORT" --tokens-file tokens.toml --policy-file policies.toml || notok "silod starts with tokens"
unset SILO_TEST_SECRET_ENV
tc() { curl -s -o "$TMP/body" -w '%{http_code}' -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
	-d "$2" "http://127.0.0.1:$PORT/v1/sandboxes"; }
code=$(tc "$TOK" '{"provider":"namespace","name":"t1","memory_mb":256,"secrets":{"S":{"file":"/etc/shadow"}}}')
check "token: a secret naming /etc/shadow is refused (403 POLICY_DENIED)" \
	bash -c "test $code = 403 && grep -q 'POLICY_DENIED' '$TMP/body' && grep -q 'sandbox.secrets.S' '$TMP/body'"
code=$(tc "$TOK" '{"provider":"namespace","name":"t2","memory_mb":256,"secrets":{"S":{"env":"SILO_TEST_SECRET_ENV"}}}')
check "token: a secret naming a variable of silod is refused (403)" test "$code" = 403
code=$(tc "$TOK2" "{\"provider\":\"namespace\",\"name\":\"t3\",\"memory_mb\":256,\"secrets\":{\"S\":{\"file\":\"$TMP/secrets/../../../etc/shadow\"}}}")
check "token + policy: a path that leaves the granted directory is refused" test "$code" = 403
code=$(tc "$TOK2" "{\"provider\":\"namespace\",\"name\":\"t4\",\"memory_mb\":256,\"secrets\":{\"S\":{\"file\":\"$TMP/secrets/db\"},\"E\":{\"env\":\"SILO_TEST_SECRET_ENV\"},\"I\":\"$V_TOK\"}}")
T4=$(jget 'j.get("id","")' < "$TMP/body")
check "token + policy granting the directory and variables: created" test "$code" = 201 -a -n "$T4"
check "... and the command sees them" test "$(ex "$T4" 'echo $S $E $I')" = "$V_FILE $V_SILODENV $V_TOK||0"

# ---- the sweep: every file silod wrote, while sandboxes live (their run dirs) and after
found=$(leaks "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR" "$TMP/silod.log")
check "no secret value in any file silod wrote, sandboxes live (run dirs included)" test -z "$found"
[ -n "$found" ] && echo "# leaked into: $found"
for id in $(api GET /v1/sandboxes | jget '" ".join(s["id"] for s in j["sandboxes"])'); do
	api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null
done
stop_daemon
check "silod exited cleanly" test "$DAEMON_RC" = 0
ls "$SILO_STATE_DIR"/registry.db* > /dev/null && ok "registry.db (and its WAL) present to search" || notok "registry.db present"
kill $EVPID 2>/dev/null
found=$(leaks "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR" "$TMP/silod.log" "$TMP/events.log")
check "no secret value in the state dir (registry.db + WAL, audit.jsonl, snapshots), runtime dir, silod's log or events" \
	test -z "$found"
[ -n "$found" ] && echo "# leaked into: $found"
check "the snapshot metadata was searched too" test -n "$(find "$SILO_STATE_DIR/snapshots" -type f | head -1)"

# ---- embedded silo run (no silod): nothing in its state or runtime dir
out=$(SILO_RUNTIME_DIR=$TMP/run-emb SILO_STATE_DIR=$TMP/state-emb "$SILO" run --provider namespace \
	--secret EMB="$V_EMB" -- sh -c 'echo $EMB' 2>&1)
check "embedded silo run --secret: the command sees it" test "$out" = "$V_EMB"
check "embedded silo run: no value in its state or runtime dir" test -z "$(leaks "$TMP/run-emb" "$TMP/state-emb")"
exit $((FAILED > 0))
