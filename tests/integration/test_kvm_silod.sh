#!/usr/bin/env bash
# A kvm sandbox created through silod outlives the thread that served the create
# (libmicrohttpd serves each connection on a thread of its own, which ends with it).
# A parent-death signal follows the thread that forked silo-vmm, not silod: with one,
# every kvm sandbox died as its create request ended. The request-independent part of
# this (spawn and restore from a thread that ends) runs everywhere in vmm-provider
# (vmm_outlives_the_thread_that_launched_it); this test needs a guest that reaches its
# agent, so it skips on hosts without hardware virtualization (PVM: docs/vmm.md).
. "$(dirname "$0")/silod-lib.sh"

start_daemon --max-sandboxes 4 --capacity-memory-mb 4096 || { notok "silod starts"; echo "1..$N"; exit 1; }
kvm=$(api GET /v1/providers | jget '[p for p in j["providers"] if p["name"]=="kvm"][0]')
[ "$(echo "$kvm" | jget 'j["available"]')" = true ] ||
	skip_all "the kvm provider is unavailable here: $(echo "$kvm" | jget 'j.get("reason","")')"
trap 'echo "1..$N"; cleanup' EXIT

A=$(api POST /v1/sandboxes -H 'Content-Type: application/json' \
	-d '{"provider":"kvm","name":"thr","vcpus":1,"memory_mb":256}' | jget 'j.get("id","")')
check "create a kvm sandbox through silod (201)" test "$(status)" = 201 -a -n "$A"
PID=$(api GET "/v1/sandboxes/$A" | jget 'j.get("pid",0)')
sleep 1   # the create's connection, and with it its thread, has ended
check "its silo-vmm is alive after the request's thread ended" kill -0 "$PID"
check "... and the sandbox is running" test "$(api GET "/v1/sandboxes/$A" | jget 'j.get("state","")')" = running
r=$(exec_json "$A" '{"argv":["sh","-c","echo up"]}' | ndjson_out)
check "... and runs a command" test "$r" = "up||0"
api DELETE "/v1/sandboxes/$A" > /dev/null
check "delete (204)" test "$(status)" = 204
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
check "... and its silo-vmm is gone" bash -c "! kill -0 $PID 2>/dev/null"
stop_daemon
check_clean_exit "silod exits cleanly"
