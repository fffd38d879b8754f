#!/usr/bin/env bash
# Run one SDK's test suite (TAP on stdout) against a real silod: its own state
# and runtime dirs, the unix socket, and TCP on a free port with a full-access
# token and a scoped read-only one (tests/integration/silod-lib.sh cleans up
# every sandbox left and stops silod). The suite gets:
#   SILO_SOCKET                     the unix socket (the SDK's default target)
#   SILO_TEST_TCP                   http://127.0.0.1:PORT
#   SILO_TEST_TOKEN                 the full-access token
#   SILO_TEST_RO_TOKEN              a token with operations inspect,list only
# Usage: run.sh COMMAND [ARGS...]; a command exiting 77 alone is a skip.
. "$(dirname "$0")/../integration/silod-lib.sh"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/full.token"
TF=$TMP/tokens.toml
RO=$("$SILO" token create --file "$TF" --name ro --operations inspect,list) ||
	{ echo "1..1"; echo "not ok 1 - silo token create"; exit 1; }
start_daemon --listen 127.0.0.1:0 --token-file "$TMP/full.token" --tokens-file "$TF" --max-sandboxes 16 \
	--capacity-memory-mb 16384 --error-threshold 4000 || { echo "1..1"; echo "not ok 1 - silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
PORT=$(sed -n 's/.* and 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/silod.log" | tail -1)
export SILO_SOCKET=$SOCK SILO_TEST_TCP=http://127.0.0.1:$PORT SILO_TEST_TOKEN=$(cat "$TMP/full.token") \
	SILO_TEST_RO_TOKEN=$RO SILO_TEST_TMP=$TMP
"$@"
rc=$?
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/silod.log"; then
	echo "# silod reported a sanitizer error:"; grep -m5 -E 'Sanitizer|runtime error|SUMMARY' "$TMP/silod.log" | sed 's/^/#   /'
	rc=1
fi
exit $rc
