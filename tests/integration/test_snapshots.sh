#!/usr/bin/env bash
# Snapshots through a real silod (API and CLI), real namespace sandboxes:
# snapshot + tags, restore by id and by tag with equal file state, fork -n N
# isolation, pause/resume, in-use protection, corrupt and mismatched snapshots
# refused with the file named, gc, request validation, and no residue.
. "$(dirname "$0")/silod-lib.sh"

start_daemon --max-sandboxes 10 --capacity-memory-mb 8192 --error-threshold 1000 ||
	{ notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; cleanup' EXIT

sh_in() { # sh_in ID SCRIPT -> "stdout|stderr|exit"
	exec_json "$1" "$(python3 -c 'import json,sys; print(json.dumps({"argv":["sh","-c",sys.argv[1]]}))' "$2")" | ndjson_out
}

A=$(create_ns src 128)
check "source sandbox created" test "$(status)" = 201 -a -n "$A"
check "write state in the source" test "$(sh_in "$A" 'mkdir -p /root/w && echo hello > /root/w/f && rm /etc/os-release && echo ok')" = "ok||0"

# -- snapshot (CLI) with tags
S=$("$SILO" snapshot "$A" --tag golden --tag v1 2>"$TMP/err")
check "silo snapshot prints the id" test -n "$S" -a "${S#snap-}" != "$S"
j=$("$SILO" snapshots --json)
check "silo snapshots lists it with its tags, provider and source" python3 -c '
import json,sys; a=json.loads(sys.argv[1]); s=[x for x in a if x["id"]==sys.argv[2]][0]
assert s["tags"]==["golden","v1"] and s["provider"]=="namespace" and s["source"]==sys.argv[3] and s["bytes"]==6, s' "$j" "$S" "$A"
check "source is running again after the snapshot" test "$(api GET "/v1/sandboxes/$A" | jget 'j["state"]')" = running
check "snapshot dir has a versioned header" test "$(jget 'j["version"]' < "$SILO_STATE_DIR/snapshots/$S/snapshot.json")" = 1

# -- restore by tag (CLI) and by id (API)
B=$("$SILO" restore golden)
check "silo restore TAG prints a new id" test -n "$B" -a "$B" != "$A"
check "restored sandbox has the source's files" test "$(sh_in "$B" 'cat /root/w/f; test -e /etc/os-release || echo gone')" = "hello
gone||0"
r=$(api POST "/v1/snapshots/$S/restore")
C=$(echo "$r" | jget 'j.get("id","")')
check "POST /v1/snapshots/{id}/restore is 201 with the sandbox" test "$(status)" = 201 -a "$(echo "$r" | jget 'j["state"]')" = running
check "source and copies have distinct hostnames (ids)" test "$(sh_in "$C" hostname)" = "$C||0"

# -- fork
f=$("$SILO" fork "$A" -n 3 --json)
F=$(echo "$f" | jget '" ".join(j["sandboxes"])')
set -- $F
check "silo fork -n 3 gives 3 new ids" test $# = 3 -a "$1" != "$2" -a "$2" != "$3" -a "$1" != "$A"
check "fork 1 sees the parent's state" test "$(sh_in "$1" 'cat /root/w/f')" = "hello||0"
sh_in "$1" 'echo fork1 > /root/w/f; echo x > /root/new' > /dev/null
check "a write in fork 1 is invisible in fork 2" test "$(sh_in "$2" 'cat /root/w/f; ls /root')" = "hello
w||0"
check "... and in the parent" test "$(sh_in "$A" 'cat /root/w/f; ls /root')" = "hello
w||0"
check "... and visible in fork 1" test "$(sh_in "$1" 'cat /root/w/f')" = "fork1||0"
FS=$(echo "$f" | jget 'j["snapshot"]')
check "fork snapshot is listed as kind fork" test "$(api GET "/v1/snapshots/$FS" | jget 'j["kind"]')" = fork

# -- pause / resume
check "silo pause" test "$("$SILO" pause "$A")" = "$A paused"
api POST "/v1/sandboxes/$A/exec" -H 'Content-Type: application/json' -d '{"argv":["true"]}' > /dev/null
check "exec in a paused sandbox is 409" test "$(status)" = 409
S2=$("$SILO" snapshot "$A" --keep-paused)
check "snapshot of a paused sandbox keeps it paused" test -n "$S2" -a "$(api GET "/v1/sandboxes/$A" | jget 'j["state"]')" = paused
check "silo resume" test "$("$SILO" resume "$A")" = "$A running"
check "exec works after resume" test "$(sh_in "$A" 'echo back')" = "back||0"

# -- fork is all or nothing: over --max-sandboxes, nothing is left
before=$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')
nsnap=$(api GET /v1/snapshots | jget 'len(j["snapshots"])')
r=$(api POST "/v1/sandboxes/$A/fork" -d '{"n":8}')
check "fork beyond --max-sandboxes is 429 MAX_VMS_EXCEEDED" test "$(status)" = 429 -a "$(echo "$r" | jget 'j["error"]["code"]')" = MAX_VMS_EXCEEDED
check "... and rolled back: no new sandbox" test "$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')" = "$before"
check "... and no fork snapshot left" test "$(api GET /v1/snapshots | jget 'len(j["snapshots"])')" = "$nsnap"

# -- in use: refused, listed
"$SILO" snapshot rm "$S" 2>"$TMP/err"; rc=$?
check "deleting a snapshot in use fails (CONFLICT)" test $rc != 0 -a -n "$(grep CONFLICT "$TMP/err")"
check "the listing says which sandbox uses it" test -n "$(api GET "/v1/snapshots/$S" | jget 'j.get("in_use_by","")')"

# -- corruption: a flipped payload byte, then a wrong version
printf 'J' | dd of="$SILO_STATE_DIR/snapshots/$S2/payload/layer/root/w/f" bs=1 seek=0 conv=notrunc 2>/dev/null
r=$(api POST "/v1/snapshots/$S2/restore")
check "restore of a corrupted snapshot is 422 CHECKSUM_MISMATCH naming the file" python3 -c '
import json,sys; e=json.loads(sys.argv[1])["error"]
assert e["code"]=="CHECKSUM_MISMATCH" and "payload/layer/root/w/f" in e["message"], e' "$r"
check "... with status 422" test "$(status)" = 422
r=$(api GET "/v1/snapshots/$S2?verify=true")
check "GET ?verify=true reports the same mismatch" test "$(echo "$r" | jget 'j["error"]["code"]')" = CHECKSUM_MISMATCH
python3 - "$SILO_STATE_DIR/snapshots/$S2/snapshot.json" <<'PY'
import json,sys; p=sys.argv[1]; j=json.load(open(p)); j["version"]=99; json.dump(j,open(p,"w"))
PY
"$SILO" restore "$S2" 2>"$TMP/err"; rc=$?
check "a snapshot with an unknown version is refused (INVALID_CONFIG, names snapshot.json)" \
	test $rc != 0 -a -n "$(grep INVALID_CONFIG "$TMP/err" | grep 'snapshot.json' | grep 'version 99')"
before=$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')
check "failed restores left no sandbox behind" test "$before" = 6

# -- request validation
api POST "/v1/sandboxes/$A/fork" -d '{"n":0}' > /dev/null
check "fork n=0 is 400" test "$(status)" = 400
r=$(api POST "/v1/sandboxes/$A/snapshot" -d '{"tagz":["x"]}')
check "unknown body field is 400 naming it" test "$(status)" = 400 -a -n "$(echo "$r" | grep tagz)"
r=$(api POST "/v1/sandboxes/$A/snapshot" -d '{"tags":["../x"]}')
check "bad tag is 400 naming it" test "$(status)" = 400 -a -n "$(echo "$r" | grep '\.\./x')"
api GET "/v1/sandboxes/$A/snapshot" > /dev/null
check "GET on .../snapshot is 405" test "$(status)" = 405
api POST /v1/sandboxes/sb-nonexistent0/snapshot > /dev/null
check "snapshot of an unknown sandbox is 404" test "$(status)" = 404
api POST /v1/snapshots/nope/restore > /dev/null
check "restore of an unknown snapshot is 404" test "$(status)" = 404
api GET "/v1/snapshots/..%2F..%2Fetc" > /dev/null
check "a path-like snapshot id is refused" test "$(status)" = 400 -o "$(status)" = 404

# -- tags
"$SILO" snapshot tag "$S" +keep -v1 > /dev/null
check "silo snapshot tag adds and removes" test "$(api GET "/v1/snapshots/$S" | jget 'j["tags"]')" = '["golden", "keep"]'

# -- a sandbox paused when silod dies comes back running after the restart
P=$(create_ns paused-restart 128)
"$SILO" pause "$P" > /dev/null
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon --max-sandboxes 10 --capacity-memory-mb 8192 --error-threshold 1000 || notok "silod restarts"
check "paused sandbox is back, running, after kill -9 + restart" test "$(api GET "/v1/sandboxes/$P" | jget 'j["state"]')" = running
check "... and answers exec" test "$(sh_in "$P" 'echo back')" = "back||0"
api DELETE "/v1/sandboxes/$P?grace_ms=0" > /dev/null

# -- delete everything, gc
for id in $B $C $F; do api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null; done
g=$("$SILO" snapshot gc --json)
check "gc removes the unused fork snapshot, keeps tagged ones" python3 -c '
import json,sys; r=json.loads(sys.argv[1])["removed"]; assert sys.argv[2] in r and sys.argv[3] not in r, r' "$g" "$FS" "$S"
check "silo snapshot rm works once unused" test "$("$SILO" snapshot rm "$S")" = "$S"
"$SILO" snapshot rm --force "$S2" > /dev/null
api DELETE "/v1/sandboxes/$A?grace_ms=0" > /dev/null
check "no snapshots left" test "$(api GET /v1/snapshots | jget 'len(j["snapshots"])')" = 0
check "no run directories left" test -z "$(ls -A "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null)"
check "audit log records snapshot and restore" test -n "$(grep '"event":"snapshot"' "$SILO_STATE_DIR/audit.jsonl")" -a \
	-n "$(grep '"event":"restored"' "$SILO_STATE_DIR/audit.jsonl")"
stop_daemon
check_clean_exit "silod exits cleanly (no sanitizer reports)"
