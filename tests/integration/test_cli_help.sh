#!/usr/bin/env bash
# `silo VERB --help` and `silo VERB -h` print the verb's usage on stdout and exit 0, for every
# row of the verbs[] table in cli/main.c; the usage has one line per option ("  -x, --long ARG
# text"), and every long option the CLI parses (cli/*.c) is described in some verb's help.
set -uo pipefail
B=${SILO_BUILD_ROOT:?} SRC=${SILO_SOURCE_ROOT:?}
SILO="$B/cli/silo"
N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=1; echo "not ok $N - $1"; shift; for l in "$@"; do echo "# $l"; done; }
TMP=$(mktemp -d /tmp/silo-help.XXXXXX)
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT
export SILO_STATE_DIR="$TMP/state" SILO_RUNTIME_DIR="$TMP/run"
unset SILO_HOST SILO_API_TOKEN

# the rows of verbs[]: {"NAME", "summary", cmd_fn, ...}
verbs=$(sed -n '/^static const cli_verb verbs\[\] = {/,/^};/p' "$SRC/cli/main.c" | grep -oP '^\t\{"\K[a-z-]+(?=")')
[ "$(wc -w <<<"$verbs")" -ge 16 ] && ok "verbs[] has $(wc -w <<<"$verbs") rows" || notok "verbs[] parsed" "$verbs"
all_help=
for v in $verbs; do
	for flag in --help -h; do
		out=$("$SILO" "$v" $flag 2> "$TMP/err"); rc=$?
		if [ $rc = 0 ] && [ ! -s "$TMP/err" ] && [[ "$out" == "usage: silo "* ]]; then
			ok "silo $v $flag prints its usage and exits 0"
		else
			notok "silo $v $flag prints its usage and exits 0" "exit $rc" "stdout: $(head -c 200 <<<"$out")" \
				"stderr: $(head -c 200 "$TMP/err")"
		fi
	done
	# one line per option: every line after the first is "  WORD-OR-OPTION ...  description"
	bad=$(tail -n +2 <<<"$out" | grep -vP '^  \S.*\S {2,}\S' || true)
	# and no line describes two options ("--a, --b" or "--a --b" at its start)
	two=$(tail -n +2 <<<"$out" | grep -P '^  (-\w, )?--[\w-]+( \S+)?,? +--' || true)
	if [ -z "$bad$two" ]; then ok "silo $v --help: one line per option, each with a description"
	else notok "silo $v --help: one line per option, each with a description" "$bad" "$two"; fi
	all_help+=$out$'\n'
done
# a command's own --help is not taken for silo's
out=$("$SILO" exec some-id sh --help 2>&1); rc=$?
[[ "$out" != usage:\ silo\ exec* ]] && ok "silo exec ID CMD --help leaves --help to CMD" || notok "silo exec ID CMD --help leaves --help to CMD" "$out"

# every long option parsed in cli/*.c is described somewhere
opts=$( (grep -ohP '\{"\K[a-z][a-z-]+(?=", (no|required|optional)_argument)' "$SRC"/cli/*.c | sed 's/^/--/'
	grep -ohP 'strcmp\((argv\[i\]|a), "\K--[a-z][a-z-]+(?=")' "$SRC"/cli/*.c) | sort -u | grep -vx -- '--help')
missing=
for o in $opts; do grep -q -- "$o\b" <<<"$all_help" || missing+=" $o"; done
[ -z "$missing" ] && ok "every option the CLI parses is in a verb's --help ($(wc -w <<<"$opts") options)" ||
	notok "every option the CLI parses is in a verb's --help" "missing:$missing"
exit $FAILED
