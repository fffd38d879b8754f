# TAP helpers for the shell tests (sourced): one definition for every script.
#   ok NAME; notok NAME [DIAGNOSTIC LINES...]; check NAME COMMAND...; skip_all REASON
# N counts the cases, FAILED the failures; end with `exit $((FAILED > 0))`. Diagnostics
# are TAP comments ("# ..."), so meson never sees an unknown TAP line. skip_all runs
# the script's tap_cleanup function, if it defines one, before exiting.
N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"; shift; for l in "$@"; do echo "# $l"; done; }
# check runs COMMAND in this shell; what it prints on stdout becomes TAP comments.
check() {
	local name=$1 out rc; shift
	out=$(mktemp "${TMPDIR:-/tmp}/silo-tap.XXXXXX") || { notok "$name" "mktemp failed"; return; }
	"$@" > "$out"; rc=$?
	tap_comment < "$out"; rm -f "$out"
	if [ $rc = 0 ]; then ok "$name"; else notok "$name" "command: $*"; fi
}
skip_all() { echo "1..0 # SKIP $1"; if declare -F tap_cleanup > /dev/null; then tap_cleanup; fi; exit 0; }
# Copy a command's output into the TAP stream as comments.
tap_comment() { sed 's/^/# /'; }
