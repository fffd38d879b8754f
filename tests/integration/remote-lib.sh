# Helpers for the remote tests (sourced after silod-lib.sh): a private CA,
# certificates made with openssl (Debian `openssl`), and extra silods with
# their own state and runtime dirs.

# mkca NAME: a self-signed CA in $TMP/pki/NAME.{key,pem}
mkca() {
	mkdir -p "$TMP/pki"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$1" \
		-keyout "$TMP/pki/$1.key" -out "$TMP/pki/$1.pem" 2> /dev/null
}
# mkcert CA NAME [server]: a certificate NAME signed by CA; server ones name 127.0.0.1 and localhost
mkcert() {
	local ca=$1 name=$2 ext="$TMP/pki/$2.ext"
	if [ "${3:-}" = server ]; then
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$ext"
	else
		printf 'extendedKeyUsage=clientAuth\n' > "$ext"
	fi
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
		-keyout "$TMP/pki/$name.key" -out "$TMP/pki/$name.csr" 2> /dev/null &&
		openssl x509 -req -in "$TMP/pki/$name.csr" -CA "$TMP/pki/$ca.pem" -CAkey "$TMP/pki/$ca.key" \
			-CAcreateserial -days 2 -extfile "$ext" -out "$TMP/pki/$name.pem" 2> /dev/null
}
newtoken() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# start_node NAME [silod args...]: another silod (own state/runtime dirs, TCP on a free
# loopback port); sets NODE_PORT and records the pid in $TMP/NAME/pid.
start_node() {
	local n=$1 d="$TMP/$1"; shift
	mkdir -p "$d/state" "$d/run"
	SILO_STATE_DIR="$d/state" SILO_RUNTIME_DIR="$d/run" "$SILOD" "$@" > "$d/log" 2>&1 &
	echo $! > "$d/pid"
	NODE_PORT=
	for _ in $(seq 1 200); do
		NODE_PORT=$(sed -n 's/.* and 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$d/log" | head -1)
		[ -n "$NODE_PORT" ] && return 0
		kill -0 "$(cat "$d/pid")" 2> /dev/null || { sed 's/^/#   /' "$d/log"; return 1; }
		sleep 0.05
	done
	return 1
}
# stop_node NAME [SIGNAL]: stop it (TERM by default) and wait
stop_node() {
	local p; p=$(cat "$TMP/$1/pid" 2> /dev/null) || return 0
	kill -"${2:-TERM}" "$p" 2> /dev/null
	for _ in $(seq 1 200); do kill -0 "$p" 2> /dev/null || break; sleep 0.05; done
	kill -KILL "$p" 2> /dev/null
	wait "$p" 2> /dev/null
	rm -f "$TMP/$1/pid"
}
# node_cleanup NAME...: delete what each node still runs, then stop it
node_cleanup() {
	local n
	for n in "$@"; do
		[ -f "$TMP/$n/pid" ] || continue
		local sock="$TMP/$n/run/silod.sock"
		for id in $(curl -s --unix-socket "$sock" http://silod/v1/sandboxes 2> /dev/null | python3 -c 'import json,sys
try:
  [print(s["id"]) for s in json.load(sys.stdin)["sandboxes"] if "target" not in s]
except Exception: pass'); do
			curl -s --unix-socket "$sock" -X DELETE "http://silod/v1/sandboxes/$id?grace_ms=0" > /dev/null
		done
		stop_node "$n"
	done
}
