#!/usr/bin/env bash
# Templates through a real silod and real QEMU TCG guests (docs/snapshots.md
# "Templates"): the first POST /v1/sandboxes of an image + shape boots cold and
# names the template it saved; the second is restored from it ("start":
# "template") and answers exec; ?cold=1 boots cold; a bad cold value is 400
# naming the parameter; `silo run` through silod restores too and `--cold`
# boots cold; the template is a snapshot of kind template that cannot be
# deleted while a sandbox restored from it lives; nothing is left behind.
. "$(dirname "$0")/silod-lib.sh"
[[ "${SILO_SKIP_VM_TESTS:-}" != 1 ]] || skip_all "SILO_SKIP_VM_TESTS=1"
unset SILO_TEMPLATES

start_daemon --max-sandboxes 10 --capacity-memory-mb 8192 --error-threshold 1000 ||
	{ notok "silod starts"; echo "1..$N"; exit 1; }
trap 'echo "1..$N"; cleanup' EXIT
provider_available qemu || skip_all "qemu provider unavailable here"
"$SILO" image ls 2>/dev/null | grep -q '^base ' || skip_all "no base image: run scripts/prepare-images.sh"

spec='{"provider":"qemu","image":"base","name":"tpl","vcpus":1,"memory_mb":256}'
create() { # create [QUERY] -> JSON of the new sandbox
	api POST "/v1/sandboxes$1" -H 'Content-Type: application/json' -d "$spec"
}
A=$(create "")
check "first create: 201, booted cold" test "$(status)" = 201 -a "$(echo "$A" | jget 'j["start"]')" = cold
TID=$(echo "$A" | jget 'j.get("template","")')
check "... and names the template it saved" test "${TID#snap-}" != "$TID"
check "the template is a snapshot of kind template" test "$(api GET "/v1/snapshots/$TID" | jget 'j["kind"]')" = template
B=$(create "")
BID=$(echo "$B" | jget 'j.get("id","")')
check "second create: restored from that template" test "$(echo "$B" | jget 'j["start"]') $(echo "$B" | jget 'j.get("template","")')" = "template $TID"
check "the restored sandbox answers exec" test "$(exec_json "$BID" '{"argv":["echo","hi"]}' | ndjson_out)" = "hi||0"
api DELETE "/v1/snapshots/$TID" > /dev/null
check "the template cannot be deleted while a sandbox restored from it lives" test "$(status)" = 409
C=$(create "?cold=1")
check "?cold=1 boots cold and saves nothing" test "$(echo "$C" | jget 'j["start"]') $(echo "$C" | jget 'j.get("template","-")')" = "cold -"
create "?cold=maybe" > /dev/null
expect_error "a bad cold value is 400 naming the parameter" 400 INVALID_CONFIG "cold"
for x in "$A" "$B" "$C"; do api DELETE "/v1/sandboxes/$(echo "$x" | jget 'j["id"]')?grace_ms=0" > /dev/null; done

"$SILO" run --provider qemu --memory 256 -- true > /dev/null 2>&1   # its shape's template, if none yet
t=$("$SILO" run --provider qemu --memory 256 --time --json -- true 2>&1 >/dev/null | grep '"sandbox"')
check "silo run through silod restores the template" test "$(echo "$t" | jget 'j["start"]')" = template
t=$("$SILO" run --provider qemu --memory 256 --cold --time --json -- true 2>&1 >/dev/null | grep '"sandbox"')
check "silo run --cold through silod boots cold" test "$(echo "$t" | jget 'j["start"]')" = cold
check "no sandbox left" test "$(live_count)" = 0
check_nothing_left "no cgroup or run dir left" $(sandbox_ids all)
exit $((FAILED > 0))
