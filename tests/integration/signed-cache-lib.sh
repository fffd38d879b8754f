# A private image cache with the kernel and the "base" image of the real cache,
# sourced by the tests that attack the cache or its signature (test_trust.sh,
# test_trust_stamp.sh, test_scratch_template.sh). Sourcing sets B, SILO,
# real_cache (the cache to copy from) and the TAP helpers ok/notok/check (N,
# FAILED).
#   private_dirs NAME: a temp dir /tmp/NAME.XXXXXX (removed at exit unless KEEP
#     is set; the exit prints the plan and exits FAILED) holding the keyring,
#     cache, run and state dirs of the test (exported), and cd into it.
#   cache_layout REAL_CACHE KERNEL_MODE (in the temp dir): the kernel,
#     cache/images/base and an unsigned manifest.json naming both. KERNEL_MODE
#     "copy" puts a copy of vmlinux in the cache (so it can be tampered with),
#     "link" a symlink.
#   signed_cache REAL_CACHE KERNEL_MODE: the same, plus a new key s.pub/s.key in
#     the keyring and the manifest signed by it (versioned).
B=${SILO_BUILD_ROOT:?}
SILO="$B/cli/silo"
real_cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=1; echo "not ok $N - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d" "command: $*"; fi; }

private_dirs() {
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	trap '[[ -n "${KEEP:-}" ]] || rm -rf "$TMP"; echo "1..$N"; exit $FAILED' EXIT
	export SILO_KEYRING_DIR="$TMP/keyring" SILO_CACHE_DIR="$TMP/cache" SILO_RUNTIME_DIR="$TMP/run" \
		SILO_STATE_DIR="$TMP/state"
	cd "$TMP" || exit 1
}

cache_layout() {
	local real=$1 mode=$2 kdir key
	kdir=$(readlink -f "$real/kernel/current")
	key=$(basename "$kdir")
	mkdir -p cache/kernel cache/images/base
	if [[ $mode == copy ]]; then
		mkdir -p "cache/kernel/$key" && cp "$kdir/vmlinux" "cache/kernel/$key/vmlinux"
	else
		ln -s "$kdir" "cache/kernel/$key"
	fi
	ln -s "$key" cache/kernel/current
	cp "$real/images/base/initramfs.cpio.gz" cache/images/base/
	python3 - "$PWD/cache/kernel/$key/vmlinux" "$PWD/cache/images/base/initramfs.cpio.gz" \
		"$PWD/cache/images/manifest.json" <<'PY'
import hashlib, json, os, sys
k, i, m = sys.argv[1:]
def f(p): return {"path": p, "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest(), "size": os.stat(p).st_size}
ent = {"name": "base", "kind": "initramfs", **f(i), "created": "2026-01-01T00:00:00Z",
       "kernel": {"key": os.path.basename(os.path.dirname(k)), **f(k)}}
json.dump({"version": 1, "images": [ent]}, open(m, "w"), indent=2)
PY
}

signed_cache() {
	cache_layout "$@" &&
		"$SILO" trust keygen -p s.pub -s s.key > /dev/null &&
		"$SILO" trust add-key s.pub > /dev/null &&
		"$SILO" trust sign -s s.key > /dev/null
}
