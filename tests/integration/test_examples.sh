#!/usr/bin/env bash
# Every file in examples/ works as shipped: it validates, `silo run --spec FILE` runs a command in
# it (embedded, no silod), and `silo create -f FILE` + `silo exec` do the same through silod.
# The command checks the spec's [sandbox] workdir (created at start) and env.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
SRC=${SILO_SOURCE_ROOT:?}
files=$(ls "$SRC"/examples/*.toml)
[ -n "$files" ] && ok "examples/ has $(wc -w <<<"$files") files" || notok "examples/ has files"
# examples/sdk/ holds programs, not specs: each is run as shipped by an sdk-* test (tests/sdk/,
# sdk-c-example in tests/meson.build), against a real silod; here only that one does
for p in "$SRC"/examples/sdk/*; do
	b=examples/sdk/$(basename "$p")
	check "$b is run by an sdk-* test" grep -rqF "$b" "$SRC"/tests/sdk "$SRC"/tests/meson.build
done
vm_ok=1
[ "${SILO_SKIP_VM_TESTS:-}" = 1 ] && vm_ok=0
probe='echo "$(pwd) ${PYTHONUNBUFFERED:-}" ok'
# what the example asks for: "WORKDIR ENV"
want() { python3 - "$1" <<'PY'
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
s = d.get("sandbox", {})
print(s.get("workdir", "/"), s.get("env", {}).get("PYTHONUNBUFFERED", ""))
PY
}
for f in $files; do
	b=$(basename "$f")
	check "$b: silo config validate" "$SILO" config validate "$f"
	w=$(want "$f")
	if [ $vm_ok = 0 ]; then
		N=$((N + 1)); echo "ok $N - $b: silo run --spec # SKIP SILO_SKIP_VM_TESTS=1"
		continue
	fi
	out=$(timeout 300 "$SILO" run --spec "$f" -- sh -c "$probe" 2> "$TMP/err"); rc=$?
	if [ $rc = 0 ] && [ "$out" = "$w ok" ]; then ok "$b: silo run --spec runs a command (workdir, env)"
	else notok "$b: silo run --spec runs a command (workdir, env)" "exit $rc, out '$out', want '$w ok'" "$(tail -3 "$TMP/err")"; fi
done

start_daemon || { notok "silod starts"; exit 1; }
for f in $files; do
	b=$(basename "$f")
	if [ $vm_ok = 0 ]; then
		N=$((N + 1)); echo "ok $N - $b: through silod # SKIP SILO_SKIP_VM_TESTS=1"
		continue
	fi
	id=$(timeout 300 "$SILO" create -f "$f" 2> "$TMP/err")
	check "$b: silo create -f through silod" test -n "$id"
	[ -n "$id" ] || { sed 's/^/# /' "$TMP/err" | tail -3; continue; }
	w=$(want "$f")
	# exec runs in / unless told: -w the spec's workdir, which exists from the start
	out=$("$SILO" exec -w "${w%% *}" "$id" -- sh -c "$probe" 2>&1)
	check "$b: exec in the spec's workdir" test "${out%% *}" = "${w%% *}"
	"$SILO" rm "$id" > /dev/null
	check "$b: removed" test $? = 0
done
stop_daemon
check_clean_exit "silod exits cleanly"
exit $((FAILED > 0))
