#!/usr/bin/env bash
# Deployments against a real silod (namespace provider, real SQLite): deploy
# from agents/NAME.toml with overrides, API/CLI/registry agree, bad input names
# the field, team quotas and host capacity refuse with RESOURCE_EXCEEDED naming
# the limit, restart policies (kill the sandbox's process: on-failure/always come
# back with exponential backoff, never does not), health-warning events,
# undeploy with grace, kill -9 of silod (reconcile), usage accounting, and a
# budget that warns at 80% and stops the team at 100%.
. "$(dirname "$0")/silod-lib.sh"
EVPID=
trap 'echo "1..$N"; [ -n "$EVPID" ] && kill "$EVPID" 2>/dev/null; cleanup' EXIT

AG=$TMP/agents
mkdir -p "$AG"
for n in web worker batch solo big; do
	cat > "$AG/$n.toml" <<EOF
[vm]
name = "$n-spec"
provider = "namespace"

[resources]
vcpus = 1
memory_mb = 256

[metadata]
role = "$n"
EOF
done
sed -i 's/vcpus = 1/vcpus = 3/' "$AG/big.toml"
cat > "$TMP/teams.toml" <<'EOF'
[rates]
vcpu_second = 0.002
gib_second = 0.001

[teams.alpha]
max_sandboxes = 3
max_vcpus = 4
max_memory_mb = 1024

[teams.beta]
max_sandboxes = 1

[teams.default]
EOF
DFLAGS=(--agents-dir "$AG" --teams "$TMP/teams.toml" --deploy-interval-ms 100 --restart-backoff-ms 300
	--restart-backoff-max-ms 5000 --unhealthy-ms 1500 --capacity-vcpus 8 --capacity-memory-mb 4096)
start_daemon "${DFLAGS[@]}" || { notok "silod starts with --agents-dir and --teams"; exit 1; }
namespace_available || { trap cleanup EXIT; skip_all "namespace provider unavailable here: $(api GET /v1/providers)"; }
"$SILO" events --json > "$TMP/events" 2>&1 &
EVPID=$!
sleep 0.2

deploy() { # deploy JSON -> body; status in $TMP/status
	api POST /v1/deployments -H 'Content-Type: application/json' -d "$1"
}
dep_field() { api GET "/v1/deployments/$1" | jget "j.get('$2','')"; }
names_api() { api GET /v1/deployments | jget '" ".join(d["name"] for d in j["deployments"])'; }
names_cli() { "$SILO" deployments --json | jget '" ".join(d["name"] for d in j)'; }
names_db() { sqlite3 "$SILO_STATE_DIR/registry.db" "SELECT name FROM agent_deployments ORDER BY name" | tr '\n' ' ' | sed 's/ $//'; }
wait_running() { # wait_running NAME OLD_SANDBOX: until running on another sandbox
	for _ in $(seq 1 100); do
		local j; j=$(api GET "/v1/deployments/$1")
		[ "$(echo "$j" | jget 'j.get("state","")')" = running ] &&
			[ "$(echo "$j" | jget 'j.get("sandbox_id","")')" != "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# -- deploy with an override, through the CLI
out=$("$SILO" deploy web --team alpha --set resources.memory_mb=300 --set metadata.tier=front --json)
WEB_SB=$(echo "$out" | jget 'j["sandbox_id"]')
check "silo deploy starts the agent from agents/web.toml" test -n "$WEB_SB" -a "$(echo "$out" | jget 'j["state"]')" = running
sb=$(api GET "/v1/sandboxes/$WEB_SB")
check "the override is applied (memory_mb 300)" test "$(echo "$sb" | jget 'j["memory_mb"]')" = 300
check "the sandbox is named after the deployment and tagged" test "$(echo "$sb" | jget 'j["name"]+","+j["metadata"]["silo.deployment"]+","+j["metadata"]["silo.team"]+","+j["metadata"]["tier"]+","+j["metadata"]["role"]')" = "web,web,alpha,front,web"
check "the sandbox is running and answers exec" test "$(exec_json "$WEB_SB" '{"argv":["echo","hi"]}' | ndjson_out)" = "hi||0"
deploy '{"name":"worker","team":"alpha","restart":"always"}' > /dev/null
check "POST /v1/deployments answers 201" test "$(status)" = 201
"$SILO" deploy solo --team beta --restart never > /dev/null
check "silo deploy --restart never" test "$(dep_field solo restart)" = never
check "API, CLI and the SQLite file list the same deployments" test "$(names_api)|$(names_cli)|$(names_db)" = "solo web worker|solo web worker|solo web worker"
check "GET /v1/deployments/{name} carries the spec, team, policy and live sandbox" python3 -c '
import json,sys; j=json.loads(sys.argv[1])
assert j["team"]=="alpha" and j["restart"]=="on-failure" and j["sandbox"]["state"]=="running", j
assert "memory_mb = 300" in j["spec"] and j["overrides"]==["resources.memory_mb=300","metadata.tier=front"], j' "$(api GET /v1/deployments/web)"

# -- bad input names the field
deploy '{"name":"worker","team":"alpha"}' > "$TMP/b"
check "a taken name: 409 CONFLICT" test "$(status)" = 409 -a "$(jget 'j["error"]["code"]' < "$TMP/b")" = CONFLICT
"$SILO" deploy batch --set resources.cpus=2 2> "$TMP/e"; rc=$?
check "unknown --set key: INVALID_CONFIG naming it, exit 125" bash -c "[ $rc = 125 ] && grep -q 'INVALID_CONFIG.*resources.cpus: unknown key' '$TMP/e'"
"$SILO" deploy batch --set resources.memory_mb=lots 2> "$TMP/e"
check "bad --set value names the key" grep -q 'resources.memory_mb: expected an integer' "$TMP/e"
"$SILO" deploy batch --set resources.memory_mb=64 2> "$TMP/e"
check "an override the spec rules refuse names the field" grep -q 'INVALID_CONFIG.*memory_mb' "$TMP/e"
deploy '{"name":"batch","restart":"sometimes"}' > "$TMP/b"
check "bad restart policy names the field" grep -q 'restart: expected never, on-failure or always' "$TMP/b"
deploy '{"name":"../etc/passwd"}' > "$TMP/b"
check "a name with a path in it is refused" bash -c "[ $(status) = 400 ] && grep -q 'name: expected 1-64' '$TMP/b'"
deploy '{"name":"batch","colour":"red"}' > "$TMP/b"
check "unknown body field is named" grep -q "unknown field 'colour'" "$TMP/b"
deploy '{"name":"nosuch"}' > "$TMP/b"
check "an agent without agents/NAME.toml is refused naming the file" grep -q 'nosuch.toml does not exist' "$TMP/b"
deploy '{"name":"batch","team":"gamma"}' > "$TMP/b"
check "a team not in --teams is refused" grep -q "team: 'gamma' is not defined" "$TMP/b"
api DELETE /v1/deployments/web?grace=x > "$TMP/b"
check "bad grace names the query parameter" bash -c "[ $(status) = 400 ] && grep -q 'query parameter grace' '$TMP/b'"
api PUT /v1/deployments > /dev/null
check "wrong method: 405" test "$(status)" = 405
check "refused deploys left no row and no sandbox" test "$(names_db)|$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')" = "solo web worker|3"

# -- quotas and host capacity
deploy '{"name":"solo2","team":"beta","spec":"[vm]\nname=\"x\"\nprovider=\"namespace\"\n[resources]\nvcpus=1\nmemory_mb=128\n"}' > "$TMP/b"
check "team quota max_sandboxes: RESOURCE_EXCEEDED naming it" bash -c "[ $(status) = 409 ] && grep -q 'RESOURCE_EXCEEDED.*team beta quota max_sandboxes: 1 deployed, limit 1' '$TMP/b'"
"$SILO" deploy big --team alpha 2> "$TMP/e"
check "team quota max_vcpus names the quota" grep -q 'team alpha quota max_vcpus: 2 in use + 3 asked > limit 4' "$TMP/e"
"$SILO" deploy batch --team alpha --set resources.memory_mb=600 2> "$TMP/e"
check "team quota max_memory_mb names the quota" grep -q 'team alpha quota max_memory_mb: 556 in use + 600 asked > limit 1024' "$TMP/e"
"$SILO" deploy big --set resources.vcpus=1 --set resources.memory_mb=4000 2> "$TMP/e"
check "host capacity still applies (default team, no quota)" grep -q 'RESOURCE_EXCEEDED.*memory_mb: 4000 requested, 3284 MB free of 4096' "$TMP/e"
check "nothing was recorded for refused deploys" test "$(names_db)" = "solo web worker"

# -- restart policies: kill the sandbox's process
PW=$(api GET "/v1/sandboxes/$WEB_SB" | jget 'j["pid"]')
kill -KILL "$PW"
check "on-failure: a killed agent comes back on a new sandbox" wait_running web "$WEB_SB"
check "on-failure: restarts counted" test "$(dep_field web restarts)" = 1
NEW_WEB=$(dep_field web sandbox_id)
check "the restarted sandbox answers exec" test "$(exec_json "$NEW_WEB" '{"argv":["echo","back"]}' | ndjson_out)" = "back||0"
# backoff doubles: kill it twice more in quick succession
for i in 2 3; do
	S=$(dep_field web sandbox_id)
	kill -KILL "$(api GET "/v1/sandboxes/$S" | jget 'j["pid"]')"
	wait_running web "$S" || notok "web restart $i"
done
sleep 0.3
check "restart backoff doubles per failure (300, 600, 1200 ms)" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
r=[e["reason"] for e in ev if e["type"]=="health-warning" and e.get("deployment")=="web"]
assert any("restarting in 300 ms" in x and "failure 1" in x for x in r), r
assert any("restarting in 600 ms" in x and "failure 2" in x for x in r), r
assert any("restarting in 1200 ms" in x and "failure 3" in x for x in r), r' "$TMP/events"
check "restart events name the deployment and team" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert [e for e in ev if e["type"]=="deployment" and e.get("deployment")=="web" and e.get("team")=="alpha" and "restarted" in e["reason"]], ev' "$TMP/events"
SOLO_SB=$(dep_field solo sandbox_id)
kill -KILL "$(api GET "/v1/sandboxes/$SOLO_SB" | jget 'j["pid"]')"
for _ in $(seq 1 50); do api GET /v1/deployments/solo > /dev/null; [ "$(status)" = 404 ] && break; sleep 0.1; done
check "never: a killed agent is not restarted and its deployment is removed" test "$(status)" = 404
check "never: its row is gone from the SQLite file" test "$(names_db)" = "web worker"
check "never: a deployment event says why" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert [e for e in ev if e["type"]=="deployment" and e.get("deployment")=="solo" and "restart policy never" in e["reason"]], ev' "$TMP/events"
WK=$(dep_field worker sandbox_id)
"$SILO" rm "$WK" > /dev/null
check "always: a sandbox removed behind its back comes back" wait_running worker "$WK"

# -- heartbeats: a frozen agent (SIGSTOP) misses its pings: health-warning, then restarted
"$SILO" deploy batch > /dev/null
B=$(dep_field batch sandbox_id)
PB=$(api GET "/v1/sandboxes/$B" | jget 'j["pid"]')
kill -STOP "$PB"
check "a frozen agent is restarted after --unhealthy-ms" wait_running batch "$B"
for _ in $(seq 1 50); do kill -0 "$PB" 2>/dev/null || break; sleep 0.1; done
check "the frozen sandbox's process was killed" bash -c "! kill -0 $PB 2>/dev/null"
check "health-warning: missed heartbeats, then the restart" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
h=[e for e in ev if e["type"]=="health-warning" and e.get("deployment")=="batch"]
assert any("missed its heartbeats" in e["reason"] and e["code"]=="VSOCK_DISCONNECTED" for e in h), h
assert any("stopped answering heartbeats" in e["reason"] for e in h), h' "$TMP/events"
"$SILO" undeploy batch > /dev/null

# -- kill -9 silod: the next one reconciles to the same set
W1=$(dep_field web sandbox_id); K1=$(dep_field worker sandbox_id)
kill "$EVPID" 2>/dev/null; wait "$EVPID" 2>/dev/null; EVPID=
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
kill -KILL "$(sqlite3 "$SILO_STATE_DIR/registry.db" "SELECT pid FROM sandboxes WHERE id='$K1'")"
start_daemon "${DFLAGS[@]}" || notok "silod restarts"
check "after kill -9: the live agent is reattached with the same sandbox" test "$(dep_field web sandbox_id)" = "$W1"
check "after kill -9: an agent that died meanwhile is respawned (always)" wait_running worker "$K1"
check "after kill -9: API, CLI and the SQLite file agree" test "$(names_api)|$(names_cli)|$(names_db)" = "web worker|web worker|web worker"

# -- usage
sleep 0.5
U=$(api GET /v1/usage)
check "usage per team and agent: vCPU-s, GiB-s and cost from the rate table" python3 -c '
import json,sys; j=json.loads(sys.argv[1]); t=j["teams"]["alpha"]
assert j["rates"]=={"vcpu_second":0.002,"gib_second":0.001}, j
a={x["agent"]:x for x in t["agents"]}
assert a["web"]["vcpu_seconds"]>1 and a["worker"]["vcpu_seconds"]>1, a
w=a["web"]; assert abs(w["cost"]-(w["vcpu_ms"]/1000*0.002+w["mib_ms"]/1024/1000*0.001))<1e-9, w
assert t["deployments"]==2 and t["quota"]["max_vcpus"]==4, t
assert abs(t["cost"]-sum(x["cost"] for x in t["agents"]))<1e-9, t' "$U"
check "silo usage prints the table" bash -c "'$SILO' usage | grep -qE '^alpha +\\* +[0-9.]+'"

# -- undeploy with grace
PW=$(api GET "/v1/sandboxes/$(dep_field web sandbox_id)" | jget 'j["pid"]')
W=$(dep_field web sandbox_id)
"$SILO" undeploy web worker --grace 1 > /dev/null
check "undeploy removes the deployments" test "$(names_api)|$(names_db)" = "|"
check "and terminates their sandboxes" test "$(api GET "/v1/sandboxes/$W" | jget 'j["state"]')" = terminated
for _ in $(seq 1 100); do kill -0 "$PW" 2>/dev/null || break; sleep 0.05; done
check "the process is gone" bash -c "! kill -0 $PW 2>/dev/null"
check "no sandbox is left" test "$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')" = 0
"$SILO" undeploy web 2> "$TMP/e"
check "undeploying an unknown name: VM_NOT_FOUND" grep -q 'VM_NOT_FOUND.*no deployment named' "$TMP/e"
stop_daemon
check_clean_exit "silod exits cleanly"

# -- budget: warning at 80%, hard stop at 100%
cat > "$TMP/teams2.toml" <<'EOF'
[rates]
vcpu_second = 0.1
gib_second = 0.0

[teams.poor]
budget = 0.3

[teams.rich]
budget = 1000
EOF
start_daemon --agents-dir "$AG" --teams "$TMP/teams2.toml" --deploy-interval-ms 100 || notok "silod starts with budgets"
"$SILO" events --json > "$TMP/events2" 2>&1 &
EVPID=$!
sleep 0.2
"$SILO" deploy web --team poor > /dev/null && "$SILO" deploy worker --team rich > /dev/null
check "two teams deployed" test "$(names_api)" = "web worker"
for _ in $(seq 1 100); do [ "$(names_api)" = worker ] && break; sleep 0.1; done
check "budget exhausted (0.3 at 0.1 per vCPU-second): the team's agent is undeployed" test "$(names_api)|$(names_db)" = "worker|worker"
sleep 0.3
check "budget-warning at 80%, then budget-exceeded, once each" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
w=[e for e in ev if e["type"]=="budget-warning" and e.get("team")=="poor"]
x=[e for e in ev if e["type"]=="budget-exceeded" and e.get("team")=="poor"]
assert len(w)==1 and len(x)==1 and w[0]["seq"]<x[0]["seq"], ev
assert not [e for e in ev if e["type"].startswith("budget") and e.get("team")=="rich"], ev' "$TMP/events2"
"$SILO" deploy batch --team poor 2> "$TMP/e"
check "new deploys for the team are refused naming the budget" grep -q 'RESOURCE_EXCEEDED.*team poor budget: .* the budget is exhausted' "$TMP/e"
check "usage reports the budget exhausted" test "$(api GET /v1/usage | jget 'j["teams"]["poor"]["budget_exhausted"]')" = true
check "the other team is unaffected" test "$(dep_field worker state)" = running
"$SILO" undeploy worker > /dev/null
kill "$EVPID" 2>/dev/null; wait "$EVPID" 2>/dev/null; EVPID=
stop_daemon
check_clean_exit "silod exits cleanly after the budget stop"
check "no rundir left" test "$(ls "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null | wc -l)" = 0

# -- the teams file is checked at start, naming the key
printf '[teams.alpha]\nmax_cpus = 4\n' > "$TMP/bad.toml"
"$SILOD" --teams "$TMP/bad.toml" --socket "$TMP/bad.sock" > /dev/null 2> "$TMP/e"; rc=$?
check "silod refuses a teams file with an unknown key, naming line:col and the key" \
	bash -c "[ $rc != 0 ] && grep -q '2:1: teams.alpha.max_cpus: unknown key' '$TMP/e'"
printf '[rates]\nvcpu_second = "cheap"\n' > "$TMP/bad.toml"
"$SILOD" --teams "$TMP/bad.toml" --socket "$TMP/bad.sock" > /dev/null 2> "$TMP/e"
check "and a rate that is not a number" grep -q 'rates.vcpu_second: expected a number' "$TMP/e"

# -- concurrent deploys: quotas and host capacity hold under a burst
printf '[teams.burst]\nmax_sandboxes = 3\n\n[teams.open]\n' > "$TMP/teams3.toml"
start_daemon --agents-dir "$AG" --teams "$TMP/teams3.toml" --capacity-memory-mb 1024 || notok "silod starts for the burst"
JOBS=
for i in 0 1 2 3 4 5; do
	"$SILO" deploy "c$i" --team burst -f "$AG/web.toml" --set resources.memory_mb=128 > "$TMP/c$i.out" 2> "$TMP/c$i.err" &
	JOBS="$JOBS $!"
done
wait $JOBS   # not a bare wait: silod is a background job too
okc=$(cat "$TMP"/c?.out | grep -c '^c')
quota=$(cat "$TMP"/c?.err | grep -c 'RESOURCE_EXCEEDED.*team burst quota max_sandboxes: 3 deployed, limit 3')
check "6 concurrent deploys against max_sandboxes 3: 3 deployed, 3 refused naming the quota" test "$okc/$quota" = 3/3
for i in 0 1 2 3 4 5; do
	"$SILO" deploy "d$i" --team open -f "$AG/web.toml" --set resources.memory_mb=256 > "$TMP/d$i.out" 2> "$TMP/d$i.err" &
	JOBS="$JOBS $!"
done
wait $JOBS
okd=$(cat "$TMP"/d?.out | grep -c '^d')
host=$(cat "$TMP"/d?.err | grep -c 'RESOURCE_EXCEEDED.*memory_mb: 256 requested')
check "6 concurrent deploys into 640 free MB: 2 deployed, 4 refused by host capacity" test "$okd/$host" = 2/4
h=$(api GET /v1/health)
check "allocation never exceeds the host (896 of 1024 MB, 5 sandboxes)" test "$(echo "$h" | jget 'str(j["allocated"]["memory_mb"])+"/"+str(j["sandboxes"])')" = 896/5
check "the registry holds exactly the 5 admitted deployments" test "$(sqlite3 "$SILO_STATE_DIR/registry.db" 'SELECT count(*) FROM agent_deployments')" = 5
"$SILO" undeploy $(api GET /v1/deployments | jget '" ".join(d["name"] for d in j["deployments"])') > /dev/null
check "all undeployed" test "$(names_db)|$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')" = "|0"
stop_daemon
check_clean_exit "silod exits cleanly after the burst"
check "no rundir left after the burst" test "$(ls "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null | wc -l)" = 0

# -- 21 agents, each with its own agents/NAME.toml: all run, the registry lists 21, all go away
AG21=$TMP/agents21
mkdir -p "$AG21"
for i in $(seq -w 1 21); do
	printf '[vm]\nname = "agent%s"\nprovider = "namespace"\n\n[resources]\nvcpus = 1\nmemory_mb = 128\n' "$i" > "$AG21/agent$i.toml"
done
start_daemon --agents-dir "$AG21" --capacity-memory-mb 4096 || notok "silod starts with 21 agents"
t0=$(date +%s%N)
fails=0
for i in $(seq -w 1 21); do "$SILO" deploy "agent$i" > /dev/null || fails=$((fails + 1)); done
t1=$(date +%s%N)
echo "# 21 agents deployed one after another in $(( (t1 - t0) / 1000000 )) ms"
check "21 agents deployed and running" test "$fails/$(api GET /v1/deployments | jget 'sum(1 for d in j["deployments"] if d["state"]=="running" and d["sandbox"]["state"]=="running")')" = 0/21
check "the registry lists the 21" test "$(sqlite3 "$SILO_STATE_DIR/registry.db" "SELECT count(*) FROM agent_deployments WHERE state='running'")" = 21
check "every one answers exec" bash -c 'for id in $(curl -s --unix-socket "'"$SOCK"'" http://silod/v1/deployments | python3 -c "import json,sys; [print(d[\"sandbox_id\"]) for d in json.load(sys.stdin)[\"deployments\"]]"); do
	curl -s --unix-socket "'"$SOCK"'" -H "Content-Type: application/json" -d "{\"argv\":[\"true\"]}" http://silod/v1/sandboxes/$id/exec | grep -q "\"exit_code\":0" || exit 1; done'
t0=$(date +%s%N)
"$SILO" undeploy $(seq -f 'agent%02g' 1 21) --grace 0 > /dev/null
t1=$(date +%s%N)
echo "# 21 agents undeployed in $(( (t1 - t0) / 1000000 )) ms"
check "all 21 undeployed, no sandbox left" test "$(names_db)|$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')" = "|0"
stop_daemon
check_clean_exit "silod exits cleanly after 21 agents"
check "no rundir left at the end" test "$(ls "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null | wc -l)" = 0

# -- deployments pass the creation policy (--policy-file) like any create
printf 'default = "capped"\n\n[policies.capped]\nmax_memory_mb = 200\n' > "$TMP/policies.toml"
start_daemon --agents-dir "$AG" --policy-file "$TMP/policies.toml" || notok "silod starts with a policy file"
"$SILO" deploy web 2> "$TMP/e"
check "a deploy over the policy's max_memory_mb is refused: POLICY_DENIED" grep -q 'POLICY_DENIED.*max_memory_mb' "$TMP/e"
check "and leaves no row" test "$(names_db)" = ""
"$SILO" deploy web --set resources.memory_mb=128 > /dev/null
check "within the policy it deploys, and the sandbox records the policy" \
	test "$(api GET "/v1/sandboxes/$(dep_field web sandbox_id)" | jget 'j["metadata"].get("policy","")')" = capped
"$SILO" undeploy web > /dev/null
stop_daemon
check_clean_exit "silod exits cleanly after the policy checks"

# -- scoped API tokens cannot deploy (full-access tokens can)
PORT=$((20000 + RANDOM % 20000))
SCOPED=$("$SILO" token create --file "$TMP/tokens.toml" --name ci --operations create,exec,delete,list 2>/dev/null | tail -1)
FULL=full-access-token-0123456789
start_daemon --agents-dir "$AG" --listen "127.0.0.1:$PORT" --tokens-file "$TMP/tokens.toml" --token-file <(echo "$FULL") ||
	notok "silod starts with tokens"
tcp() { curl -s -o "$TMP/body" -w '%{http_code}' -H "Authorization: Bearer $1" -H 'Content-Type: application/json' "${@:2}"; }
st=$(tcp "$SCOPED" -d '{"name":"web"}' "http://127.0.0.1:$PORT/v1/deployments")
check "a scoped token is refused on POST /v1/deployments: 403 POLICY_DENIED" \
	bash -c "[ $st = 403 ] && grep -q 'POLICY_DENIED.*need a full-access token' '$TMP/body'"
st=$(tcp "$FULL" -d '{"name":"web"}' "http://127.0.0.1:$PORT/v1/deployments")
check "the full-access token deploys" test "$st" = 201
st=$(tcp "$FULL" -X DELETE "http://127.0.0.1:$PORT/v1/deployments/web")
check "and undeploys" test "$st|$(names_db)" = "200|"
stop_daemon
check_clean_exit "silod exits cleanly after the token checks"

# -- fair admission: with the host full (--max-sandboxes 2, both held by team a), deploys that may
# wait (wait_s) queue; when a slot frees, the team with fewer deployments placed goes first
# (team b's later request overtakes team a's earlier one); without wait_s a full host refuses at once.
start_daemon --agents-dir "$AG" --max-sandboxes 2 || notok "silod starts with --max-sandboxes 2"
deploy '{"name":"web","team":"a"}' > /dev/null
deploy '{"name":"worker","team":"a"}' > /dev/null
check "team a fills the host" test "$(names_api)" = "web worker" -o "$(names_api)" = "worker web"
bg_deploy() { # bg_deploy JSON TAG: POST in the background, status in $TMP/TAG.status
	curl -s -o "$TMP/$2.body" -w '%{http_code}' --unix-socket "$SOCK" -H 'Content-Type: application/json' \
		-d "$1" http://silod/v1/deployments > "$TMP/$2.status" &
}
bg_deploy '{"name":"batch","team":"a","wait_s":30}' batch; BPID=$!
for _ in $(seq 1 100); do [ "$(dep_field batch state)" = queued ] && break; sleep 0.05; done
bg_deploy '{"name":"solo","team":"b","wait_s":30}' solo; SPID=$!
for _ in $(seq 1 100); do [ "$(dep_field solo state)" = queued ] && break; sleep 0.05; done
check "both wait as queued (a first, then b)" test "$(dep_field batch state)|$(dep_field solo state)" = "queued|queued"
t0=$(date +%s%N)
deploy '{"name":"big","team":"c"}' > /dev/null
check "without wait_s a full host refuses at once (MAX_VMS_EXCEEDED)" \
	bash -c "[ $(status) = 429 -o $(status) = 409 -o $(status) = 503 -o $(status) = 422 ] && grep -q MAX_VMS_EXCEEDED '$TMP/body' && [ \$(( ($(date +%s%N) - $t0) / 1000000 )) -lt 3000 ]"
api DELETE "/v1/deployments/web?grace=0" > /dev/null
wait "$SPID"
check "the freed slot goes to team b (0 placed) although team a asked first" \
	test "$(cat "$TMP/solo.status")|$(dep_field solo state)|$(dep_field batch state)" = "201|running|queued"
api DELETE "/v1/deployments/worker?grace=0" > /dev/null
wait "$BPID"
check "the next slot goes to team a's queued deploy" test "$(cat "$TMP/batch.status")|$(dep_field batch state)" = "201|running"
t0=$(date +%s%N)
deploy '{"name":"big","team":"c","wait_s":1}' > /dev/null
el=$(( ($(date +%s%N) - t0) / 1000000 ))
check "wait_s runs out: refused after ~1 s, saying it waited (${el} ms)" \
	bash -c "[ $el -ge 900 ] && grep -q 'after waiting' '$TMP/body' && grep -q MAX_VMS_EXCEEDED '$TMP/body'"
check "a refused queued deploy leaves no row" test "$(names_db)" = "batch solo"
deploy '{"name":"big","team":"c","wait_s":"x"}' > /dev/null
check "wait_s must be an integer in 0..3600" bash -c "[ $(status) = 400 ] && grep -q wait_s '$TMP/body'"
api DELETE "/v1/deployments/batch?grace=0" > /dev/null
api DELETE "/v1/deployments/solo?grace=0" > /dev/null
check "undeployed" test "$(names_db)" = ""
stop_daemon
check_clean_exit "silod exits cleanly after the fair-admission checks"
