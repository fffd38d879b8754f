#!/usr/bin/env bash
# Files beyond one file (issue 14): a real silod, the CLI and raw HTTP, the
# namespace provider.
# - the small items: GET .../files?path=/nope is 404 FILE_NOT_FOUND; `silo cp
#   DIR ID:/p` without -r is a clear error (no TIMEOUT "Interrupted system call");
# - `silo cp -r` in and out, byte-exact with modes, symlinks (relative,
#   absolute, dangling), long names, an empty directory, a read-only one;
#   docker cp's destination rules; `-` streams the raw archive;
# - fs stat/list (depth, limit)/mkdir/move/remove/watch over HTTP and CLI;
# - attacks: paths that climb out of the sandbox root, symlinks in the sandbox
#   to host paths (the host can see the namespace sandbox's tree: nothing
#   reaches the host's marker directory through any operation), uploaded
#   archives with "..", absolute names, a symlink used as a directory;
# - a hostile guest: a fake agent (hostile_agent.c, tar-out mode) answers
#   archive downloads with crafted tars; `silo cp -r ID:/x DIR` refuses each,
#   naming the entry, and writes nothing outside DIR (a sentinel directory and
#   a symlink planted next to it stay untouched);
# - an upload counts against the sandbox's disk_mb (written by the agent).
# TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
SRC=${SILO_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}

start_daemon || { notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
A=$(create_ns files 256)
check "sandbox created" test -n "$A"
run() { "$SILO" exec "$A" -- "$@"; }

# ---------------------------------------------------------------- the small items
api GET "/v1/sandboxes/$A/files?path=/nope" > /dev/null
expect_error "GET .../files?path=/nope: 404 FILE_NOT_FOUND" 404 FILE_NOT_FOUND "/nope"
api GET "/v1/sandboxes/$A/archive?path=/nope" > /dev/null
expect_error "GET .../archive?path=/nope: 404 FILE_NOT_FOUND before any byte" 404 FILE_NOT_FOUND "/nope"
mkdir -p "$TMP/d1"
echo x > "$TMP/d1/f"
"$SILO" cp "$TMP/d1" "$A:/tmp/d1" 2> "$TMP/cp.err"
st=$?
echo "# $(cat "$TMP/cp.err")"
check "silo cp DIR ID:/p without -r: status 125, says to use -r (not TIMEOUT)" \
	bash -c "test $st = 125 && grep -q 'with -r' '$TMP/cp.err' && ! grep -q TIMEOUT '$TMP/cp.err'"
run mkdir -p /tmp/rdir
"$SILO" cp "$A:/tmp/rdir" "$TMP/rdir" 2> "$TMP/cp.err"
st=$?
check "silo cp ID:/dir DEST without -r: 125, is a directory (use -r)" bash -c "test $st = 125 && grep -q 'with -r' '$TMP/cp.err'"

# ---------------------------------------------------------------- cp -r round trips
T=$TMP/tree
LONG=$(printf 'n%.0s' $(seq 1 150))
mkdir -p "$T/sub/deeper" "$T/empty" "$T/ro" "$T/sub/$LONG"
head -c 3000000 /dev/urandom > "$T/big.bin"
echo '#!/bin/sh' > "$T/run.sh"; chmod 0755 "$T/run.sh"
printf 'secret' > "$T/sub/private"; chmod 0600 "$T/sub/private"
: > "$T/empty-file"
echo deep > "$T/sub/$LONG/$LONG.txt"
echo spaces > "$T/with space é.txt"
ln -s run.sh "$T/rel-link"; ln -s /etc/hostname "$T/abs-link"; ln -s no/such "$T/dangling"
echo ro > "$T/ro/file"; chmod 0555 "$T/ro"; chmod 0750 "$T/sub"
touch -d @1600000000 "$T/run.sh"
snap() { (cd "$1" && find . -mindepth 1 -printf '%P %m %y %l %s %Ts\n' | LC_ALL=C sort); }
t0=$(date +%s%N)
"$SILO" cp -r "$T" "$A:/work/copy"
st=$?
echo "# cp -r in: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "silo cp -r DIR ID:/new: status 0" test "$st" = 0
check "... the tree in the sandbox has the same entries, modes, link targets and sizes" \
	test "$(run sh -c 'cd /work/copy && find . -mindepth 1 | wc -l')" = "$(cd "$T" && find . -mindepth 1 | wc -l)"
check "... contents byte-exact (sha256 of the big file)" \
	test "$(run sha256sum /work/copy/big.bin | cut -d' ' -f1)" = "$(sha256sum < "$T/big.bin" | cut -d' ' -f1)"
check "... files written as root (uid 0) in the sandbox" test "$(run stat -c %u /work/copy/run.sh)" = 0
t0=$(date +%s%N)
"$SILO" cp -r "$A:/work/copy" "$TMP/back"
st=$?
echo "# cp -r out: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "silo cp -r ID:/dir NEW: status 0" test "$st" = 0
diff <(snap "$T") <(snap "$TMP/back") > "$TMP/snap.diff"
check "round trip: names, modes, types, link targets, sizes and mtimes match ($(wc -l < "$TMP/snap.diff") differences)" \
	test ! -s "$TMP/snap.diff"
check "round trip: contents byte-exact (diff -r)" diff -r --no-dereference "$T" "$TMP/back"
mkdir -p "$TMP/into"
"$SILO" cp -r "$A:/work/copy" "$TMP/into"
check "into an existing directory: the copy keeps its name (into/copy)" test -f "$TMP/into/copy/big.bin"
run mkdir -p /work/existing
"$SILO" cp -r "$T/sub" "$A:/work/existing"
check "into an existing sandbox directory: /work/existing/sub" test "$(run cat /work/existing/sub/private)" = secret
"$SILO" cp -r "$A:/work/copy" - | tar -tf - > "$TMP/list"
check "silo cp -r ID:/dir -: the raw archive on stdout (tar -t reads it)" grep -q '^copy/run.sh$' "$TMP/list"
run sh -c 'echo single > /work/one-file'
"$SILO" cp -r "$A:/work/one-file" "$TMP/hn"
check "cp -r of a single file works too" test "$(cat "$TMP/hn")" = single
chmod 0755 "$T/ro" "$TMP/back/ro" "$TMP/into/copy/ro"

# ---------------------------------------------------------------- fs operations
r=$(api GET "/v1/sandboxes/$A/fs/stat?path=/work/copy/rel-link")
check "fs/stat of a symlink: type symlink, its target" test "$(jget 'j["type"]+" "+j["link"]' <<<"$r")" = "symlink run.sh"
r=$(api GET "/v1/sandboxes/$A/fs/list?path=/work/copy&depth=2&limit=1000")
check "fs/list depth 2 includes sub/private with mode 0600" test "$(jget '[e["mode"] for e in j["entries"] if e["name"]=="sub/private"][0]' <<<"$r")" = 0600
r=$(api GET "/v1/sandboxes/$A/fs/list?path=/work/copy&depth=3&limit=3")
check "fs/list limit 3: 3 entries and truncated" test "$(jget 'str(len(j["entries"]))+" "+str(j["truncated"])' <<<"$r")" = "3 True"
api GET "/v1/sandboxes/$A/fs/list?path=/work/copy&depth=17" > /dev/null
expect_error "fs/list depth 17: 400 naming depth" 400 INVALID_CONFIG "depth"
api POST "/v1/sandboxes/$A/fs/mkdir" -H 'Content-Type: application/json' -d '{"path":"/work/m/a/b","parents":true,"mode":"0700"}' > /dev/null
check "fs/mkdir with parents and a mode" test "$(run stat -c %a /work/m/a/b)" = 700
api POST "/v1/sandboxes/$A/fs/mkdir" -H 'Content-Type: application/json' -d '{"path":"/work/m/a/b"}' > /dev/null
expect_error "fs/mkdir of an existing directory: 409 CONFLICT" 409 CONFLICT "File exists"
run sh -c 'echo 1 > /work/m/one; echo 2 > /work/m/two'
api POST "/v1/sandboxes/$A/fs/move" -H 'Content-Type: application/json' -d '{"from":"/work/m/one","to":"/work/m/two","overwrite":false}' > /dev/null
expect_error "fs/move onto an existing file without overwrite: 409 CONFLICT" 409 CONFLICT "File exists"
api POST "/v1/sandboxes/$A/fs/move" -H 'Content-Type: application/json' -d '{"from":"/work/m/one","to":"/work/m/two"}' > /dev/null
check "fs/move with overwrite (the default) replaces it" test "$(run cat /work/m/two)" = 1
api POST "/v1/sandboxes/$A/fs/remove" -H 'Content-Type: application/json' -d '{"path":"/work/m"}' > /dev/null
expect_error "fs/remove of a non-empty directory without recursive: an error naming it" 500 IO_ERROR "/work/m"
api POST "/v1/sandboxes/$A/fs/remove" -H 'Content-Type: application/json' -d '{"path":"/work/m","recursive":true}' > /dev/null
check "fs/remove recursive" bash -c "test $(status) = 200 && ! $SILO exec $A -- test -e /work/m"
api POST "/v1/sandboxes/$A/fs/remove" -H 'Content-Type: application/json' -d '{"path":"/","recursive":true}' > /dev/null
expect_error "fs/remove of / is refused" 500 IO_ERROR "refusing"
out=$("$SILO" fs ls "$A:/work/copy" | sort | head -3 | tr '\n' ' ')
check "silo fs ls: names, directories with a slash ($out)" grep -q "abs-link big.bin dangling" <<<"$out"
"$SILO" fs mkdir -p "$A:/work/cli/x" && "$SILO" fs mv "$A:/work/cli/x" /work/cli/y && out=$("$SILO" fs stat --json "$A:/work/cli/y" | jget 'j["type"]')
check "silo fs mkdir -p, mv, stat" test "$out" = dir
"$SILO" fs rm -r "$A:/work/cli"
check "silo fs rm -r" bash -c "! $SILO exec $A -- test -e /work/cli"
"$SILO" fs stat "$A:/nope" 2> "$TMP/st.err"
check "silo fs stat of a missing path: FILE_NOT_FOUND" grep -q FILE_NOT_FOUND "$TMP/st.err"

# watch: events as NDJSON while the tree changes
run mkdir -p /work/w
curl -s -N --unix-socket "$SOCK" "http://silod/v1/sandboxes/$A/fs/watch?path=/work/w&recursive=true" > "$TMP/watch" &
WP=$!
sleep 0.5
run sh -c 'echo a > /work/w/f; mv /work/w/f /work/w/g; chmod 600 /work/w/g; mkdir /work/w/d; sleep 0.2; echo b > /work/w/d/inner; rm /work/w/g'
sleep 0.5
run rmdir /work/w/d 2>/dev/null; run rm -rf /work/w
for _ in $(seq 1 30); do kill -0 $WP 2>/dev/null || break; sleep 0.1; done
kill $WP 2>/dev/null; wait $WP 2>/dev/null
echo "# $(tr '\n' ' ' < "$TMP/watch" | cut -c1-600)"
ev() { python3 -c 'import json,sys; want=set(tuple(a.split(":")) for a in sys.argv[2:])
got=set((j["event"], j.get("name","")) for j in map(json.loads, open(sys.argv[1])))
sys.exit(0 if want <= got else 1)' "$TMP/watch" "$@"; }
check "fs/watch: create, write, rename, chmod, remove, a new subdirectory followed" \
	ev create:f write:f rename:f create:g chmod:g create:d create:d/inner remove:g
check "fs/watch: the end when the directory goes away" ev end:
api GET "/v1/sandboxes/$A/fs/watch?path=/nope" > /dev/null
expect_error "fs/watch of a missing directory: 404" 404 FILE_NOT_FOUND "/nope"

# ---------------------------------------------------------------- attacks on paths
MARK=$TMP/host-marker
mkdir -p "$MARK"
echo "host secret" > "$MARK/secret"
before=$(cd "$MARK" && find . -printf '%P %s\n' | sort | sha256sum)
api GET "/v1/sandboxes/$A/fs/stat?path=/tmp/../../../..$MARK/secret" > /dev/null
expect_error "fs/stat of /tmp/../../..<host path>: 404 (resolved inside the sandbox)" 404 FILE_NOT_FOUND ""
run ln -s "$MARK" /tmp/hostlink
run ln -s / /tmp/rootlink
api GET "/v1/sandboxes/$A/fs/list?path=/tmp/hostlink" > /dev/null
expect_error "fs/list through a sandbox symlink to a host path: 404, not the host's directory" 404 FILE_NOT_FOUND ""
curl -s --unix-socket "$SOCK" "http://silod/v1/sandboxes/$A/archive?path=/tmp/hostlink" | tar -tvf - > "$TMP/hl.list" 2>&1
check "archive of the symlink: one symlink entry, none of the host's files" \
	bash -c "test \$(wc -l < '$TMP/hl.list') = 1 && grep -q '^l.*hostlink -> $MARK' '$TMP/hl.list'"
api GET "/v1/sandboxes/$A/archive?path=/tmp/hostlink/" > /dev/null
expect_error "archive through it (trailing slash): 404, the guest has no such directory" 404 FILE_NOT_FOUND ""
( cd "$TMP" && mkdir -p up && echo payload > up/planted && tar -cf up.tar up )
api PUT "/v1/sandboxes/$A/archive?path=/tmp/hostlink/in" --data-binary @"$TMP/up.tar" > /dev/null
expect_error "PUT archive through the link: 404, its target does not exist inside the sandbox" 404 FILE_NOT_FOUND ""
api POST "/v1/sandboxes/$A/fs/mkdir" -H 'Content-Type: application/json' -d '{"path":"/tmp/hostlink/mk","parents":true}' > /dev/null
api POST "/v1/sandboxes/$A/fs/move" -H 'Content-Type: application/json' -d '{"from":"/tmp/hostlink/secret","to":"/tmp/stolen"}' > /dev/null
expect_error "fs/move of <link to host>/secret: 404 (there is no such file in the sandbox)" 404 FILE_NOT_FOUND ""
api POST "/v1/sandboxes/$A/fs/remove" -H 'Content-Type: application/json' -d '{"path":"/tmp/rootlink","recursive":true}' > /dev/null
check "fs/remove of a symlink to / removes the link only" bash -c "test $(status) = 200 && $SILO exec $A -- test -d /bin"
api POST "/v1/sandboxes/$A/fs/remove" -H 'Content-Type: application/json' -d '{"path":"/tmp/hostlink/mk","recursive":true}' > /dev/null
after=$(cd "$MARK" && find . -printf '%P %s\n' | sort | sha256sum)
check "the host's marker directory is untouched by uploads, mkdir, move and remove through the link" test "$before" = "$after"

# hostile uploads: refused by the agent's extractor, naming the entry
mktar() { python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
out, kind = sys.argv[1], sys.argv[2]
t = tarfile.open(out, "w", format=tarfile.PAX_FORMAT)
def add(name, data=b"x", typ=tarfile.REGTYPE, link=""):
    i = tarfile.TarInfo(name); i.type = typ; i.linkname = link; i.size = len(data) if typ == tarfile.REGTYPE else 0
    t.addfile(i, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
if kind == "dotdot": add("ok/../../escape")
if kind == "absolute": add("/tmp/escape-abs")
if kind == "symlink-dir": add("l", typ=tarfile.SYMTYPE, link="/"); add("l/tmp/escape-link")
if kind == "device": add("null", typ=tarfile.CHRTYPE)
t.close()
PY
}
for k in dotdot absolute symlink-dir device; do
	mktar "$TMP/$k.tar" $k
	api PUT "/v1/sandboxes/$A/archive?path=/work/up-$k" --data-binary @"$TMP/$k.tar" > /dev/null
	expect_error "PUT archive with a $k entry: 400 INVALID_CONFIG naming the entry" 400 INVALID_CONFIG "archive entry"
done
check "nothing escaped in the sandbox (/escape, /tmp/escape-abs, /tmp/escape-link)" \
	bash -c "! $SILO exec $A -- sh -c 'test -e /escape || test -e /tmp/escape-abs || test -e /tmp/escape-link'"

# ---------------------------------------------------------------- disk_mb counts uploads
Q=$(api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary $'[vm]\nname = "small"\nprovider = "namespace"\n[resources]\nmemory_mb = 256\n[sandbox]\ndisk_mb = 64\n' | jget 'j.get("id","")')
if [ -n "$Q" ]; then
	mkdir -p "$TMP/fat" && head -c 100000000 /dev/urandom > "$TMP/fat/blob"
	"$SILO" cp -r "$TMP/fat" "$Q:/work/fat" 2> "$TMP/fat.err"
	st=$?
	echo "# $(head -c 300 "$TMP/fat.err")"
	check "an upload larger than disk_mb (64) fails: No space left on device" \
		bash -c "test $st = 125 && grep -q 'No space left' '$TMP/fat.err'"
	rm -rf "$TMP/fat"
else
	ok "disk_mb sandbox # SKIP create failed: $(head -c 200 "$TMP/body")"
fi

# ---------------------------------------------------------------- hostile guest archives
CCX=
for c in musl-gcc gcc cc; do
	if command -v $c > /dev/null && $c -static -O2 -I"$SRC" -o "$TMP/hostile" "$SRC/tests/integration/hostile_agent.c" 2> "$TMP/cc.log"; then
		CCX=$c; break
	fi
done
OUT=$TMP/landing
mkdir -p "$OUT/outside"
ln -s "$OUT/outside" "$OUT/planted-link"
evil_tar() { python3 - "$1" "$2" "$OUT" <<'PY'
import io, sys, tarfile
out, kind, land = sys.argv[1], sys.argv[2], sys.argv[3]
t = tarfile.open(out, "w", format=tarfile.GNU_FORMAT)
def add(name, data=b"pwned", typ=tarfile.REGTYPE, link="", mode=0o644):
    i = tarfile.TarInfo(name); i.type = typ; i.linkname = link; i.mode = mode
    i.size = len(data) if typ == tarfile.REGTYPE else 0
    t.addfile(i, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
add("x/", typ=tarfile.DIRTYPE, mode=0o755)
if kind == "dotdot": add("x/../../outside/pwned")
if kind == "absolute": add(land + "/outside/pwned")
if kind == "symlink-dir": add("x/link", typ=tarfile.SYMTYPE, link=land + "/outside"); add("x/link/pwned")
if kind == "planted": add("x/../planted-link/pwned")
if kind == "hardlink": add("x/h", typ=tarfile.LNKTYPE, link="../outside/f")
if kind == "device": add("x/null", typ=tarfile.CHRTYPE)
if kind == "second-root": add("y/pwned")
if kind == "setuid": add("x/suid", b"#!/bin/sh\n", mode=0o4755)
t.close()
PY
}
if [ -z "$CCX" ]; then
	ok "hostile guest archives # SKIP cannot build a static hostile agent: $(head -1 "$TMP/cc.log")"
else
	for k in dotdot absolute symlink-dir planted hardlink device second-root setuid; do
		R=$TMP/evil-$k
		mkdir -p "$R"/{proc,sys,dev,tmp,run,sbin,.oldroot}
		echo tar-out > "$R/mode"
		cp "$TMP/hostile" "$R/sbin/silo-agent"
		evil_tar "$R/evil.tar" $k
		E=$(create_ns "evil-$k" 128 ",\"rootfs\":\"$R\"")
		if [ -z "$E" ]; then
			notok "hostile guest ($k): the fake agent's sandbox starts" "$(cat "$TMP/body")"
			continue
		fi
		rm -rf "$OUT/dest"
		"$SILO" cp -r "$E:/x" "$OUT/dest" 2> "$TMP/evil.err"
		st=$?
		echo "# $k: $(head -c 300 "$TMP/evil.err")"
		if [ $k = setuid ]; then
			check "hostile guest archive ($k): extracted without the setuid bit" \
				bash -c "test $st = 0 && test \$(stat -c %a '$OUT/dest/suid') = 755"
		else
			check "hostile guest archive ($k): silo cp -r refuses it (125) naming the entry" \
				bash -c "test $st = 125 && grep -q 'archive entry' '$TMP/evil.err'"
		fi
		check "... nothing written outside the destination (the sentinel is empty, the planted link intact)" \
			bash -c "test -z \"\$(ls -A '$OUT/outside')\" && test -L '$OUT/planted-link'"
		api DELETE "/v1/sandboxes/$E?grace_ms=0" > /dev/null
	done
fi

# ---------------------------------------------------------------- scoped tokens over TCP
stop_daemon
TF=$TMP/tokens.toml
RD=$("$SILO" token create --file "$TF" --name reader --operations file_read,inspect,list)
WR=$("$SILO" token create --file "$TF" --name writer --operations file_write)
RUN=$("$SILO" token create --file "$TF" --name runner --operations exec)
PORT=$((20000 + RANDOM % 20000))
start_daemon --listen "127.0.0.1:$PORT" --tokens-file "$TF" || { notok "silod starts on TCP"; exit 1; }
tcp() { local t=$1 m=$2 p=$3; shift 3
	curl -s -o "$TMP/body" -w '%{http_code}' -H "Authorization: Bearer $t" -X "$m" "$@" "http://127.0.0.1:$PORT$p"; }
check "file_read token: fs/list 200, archive GET 200" 	test "$(tcp "$RD" GET "/v1/sandboxes/$A/fs/list?path=/work")$(tcp "$RD" GET "/v1/sandboxes/$A/archive?path=/work/copy")" = 200200
check "file_read token: PUT archive, fs/mkdir, fs/move, fs/remove are 403" 	test "$(tcp "$RD" PUT "/v1/sandboxes/$A/archive?path=/work/t" --data-binary @"$TMP/up.tar")$(tcp "$RD" POST "/v1/sandboxes/$A/fs/mkdir" -H 'Content-Type: application/json' -d '{"path":"/work/t"}')$(tcp "$RD" POST "/v1/sandboxes/$A/fs/move" -H 'Content-Type: application/json' -d '{"from":"/work/copy","to":"/work/t"}')$(tcp "$RD" POST "/v1/sandboxes/$A/fs/remove" -H 'Content-Type: application/json' -d '{"path":"/work/copy"}')" = 403403403403
check "file_read token: processes (list, start) and sessions are 403" 	test "$(tcp "$RD" GET "/v1/sandboxes/$A/procs")$(tcp "$RD" POST "/v1/sandboxes/$A/procs" -H 'Content-Type: application/json' -d '{"argv":["true"]}')" = 403403
r=$(python3 -c '
import sys; sys.path.insert(0, sys.argv[3])
from silo_ws import WS
w = WS(None, "/v1/sandboxes/%s/session" % sys.argv[1], token=sys.argv[2], tcp=("127.0.0.1", int(sys.argv[4])))
print(w.status)' "$A" "$RD" "$(dirname "$0")" "$PORT")
check "file_read token: the WebSocket session is refused before the upgrade (403)" test "$r" = 403
check "file_write token: PUT archive 200, fs/stat 403" 	test "$(tcp "$WR" PUT "/v1/sandboxes/$A/archive?path=/work/t" --data-binary @"$TMP/up.tar")$(tcp "$WR" GET "/v1/sandboxes/$A/fs/stat?path=/work")" = 200403
check "exec token: start a process 201, archive GET 403" 	test "$(tcp "$RUN" POST "/v1/sandboxes/$A/procs" -H 'Content-Type: application/json' -d '{"argv":["true"]}')$(tcp "$RUN" GET "/v1/sandboxes/$A/archive?path=/work")" = 201403
out=$(SILO_HOST=http://127.0.0.1:$PORT SILO_API_TOKEN=$RUN "$SILO" exec -t "$A" -- stty size)
check "silo exec -t over TCP with an exec token (WebSocket with the bearer token): $out" test "$(tr -d '\r' <<<"$out")" = "24 80"
stop_daemon
check_clean_exit "silod exits 0, no sanitizer report"
