#!/usr/bin/env bash
# The Rust crate (sdk/rust) against a real silod: `cargo test --offline` (no
# crate registry), its results as TAP. The crate links libsilo-client; a
# sanitized one (the suite's ASan build) cannot be loaded by a plain cargo
# binary, so a release build of just that library is made once under
# $SILO_BUILD_ROOT/sdk-rust/build and reused (ninja rebuilds what changed), as
# is cargo's target dir next to it. Arguments go to the test binary (test names).
. "$(dirname "$0")/../tap.sh"
if [ "${1:-}" = --under-silod ]; then
	# the tests (tests/sdk/run.sh started silod): `test NAME ... ok|FAILED|ignored` becomes TAP
	shift
	cd "$SILO_SOURCE_ROOT/sdk/rust" || exit 1
	timeout 400 cargo test --offline --quiet -- --test-threads=2 --format=pretty "$@" > "$SILO_TEST_TMP/cargo.out" 2>&1
	rc=$?
	while read -r _ name _ r; do
		case $r in ok) ok "$name" ;; ignored) ok "$name # SKIP ignored" ;; *) notok "$name" ;; esac
	done < <(grep -E '^test .* \.\.\. ' "$SILO_TEST_TMP/cargo.out")
	[ $rc = 0 ] || { FAILED=$((FAILED + 1)); sed -n '/^failures:/,$p' "$SILO_TEST_TMP/cargo.out" | head -60 | tap_comment; }
	# examples/sdk/agent.rs as shipped
	if cargo build --offline --quiet --example agent 2> "$SILO_TEST_TMP/ex.err"; then
		while read -r line; do
			case $line in "ok "*) ok "${line#ok * - }" ;; "not ok "*) notok "${line#not ok * - }" ;; "#"*) echo "$line" ;; esac
		done < <(bash "$SILO_SOURCE_ROOT/tests/sdk/check_example.sh" "$CARGO_TARGET_DIR/debug/examples/agent")
	else notok "cargo build --example agent" "$(tail -5 "$SILO_TEST_TMP/ex.err")"; fi
	echo "1..$N"
	exit $((FAILED > 0))
fi
SRC=${SILO_SOURCE_ROOT:?} D=${SILO_BUILD_ROOT:?}/sdk-rust
command -v cargo > /dev/null || skip_all "cargo is not installed (rustup or Debian's cargo package)"
mkdir -p "$D"
if [ ! -f "$D/build/build.ninja" ]; then
	rm -rf "$D/build"
	CC=${RUST_SDK_CC:-cc} meson setup "$D/build" "$SRC" --buildtype=release -Db_sanitize=none -Dfuzz=driver \
		> "$D/setup.log" 2>&1 || { echo "1..1"; echo "not ok 1 - meson setup of a plain libsilo-client"; tap_comment < "$D/setup.log"; exit 1; }
fi
meson compile -C "$D/build" silo-client > "$D/build.log" 2>&1 ||
	{ echo "1..1"; echo "not ok 1 - build a plain libsilo-client"; tail -20 "$D/build.log" | tap_comment; exit 1; }
export CARGO_TARGET_DIR=$D/target SILO_CLIENT_LIB_DIR=$D/build/lib/client
export LD_LIBRARY_PATH=$SILO_CLIENT_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
(cd "$SRC/sdk/rust" && cargo test --offline --no-run --quiet) > "$D/cargo.log" 2>&1 ||
	{ echo "1..1"; echo "not ok 1 - cargo test --offline builds"; tail -30 "$D/cargo.log" | tap_comment; exit 1; }
exec bash "$SRC/tests/sdk/run.sh" bash "$0" --under-silod "$@"
