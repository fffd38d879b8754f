#!/usr/bin/env bash
# Issue 14 item 1: env, workdir and user given at create (silo create -e/-w/-u,
# the JSON fields, hac.toml [sandbox]) or by the image (Env, WorkingDir, User)
# are the defaults of every exec through silod, on every provider; an exec's
# own env, cwd and uid win. A missing workdir is made. Checked through the CLI
# and raw HTTP against a real silod, again after silod is killed -9 and
# restarted (the user is resolved again on reattach), and with an imported
# image on namespace, qemu and kvm (each skipped with its reason where it is
# unavailable). The C API's half is tests/unit/test_public_api.c. TAP.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
S=${SILO_SOURCE_ROOT:?}
[[ $(id -u) -eq 0 ]] || { trap cleanup EXIT; skip_all "the namespace provider needs root"; }

# A private image cache (the imported test image lands there), the guest kernel linked in.
real_cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
export SILO_CACHE_DIR="$TMP/cache" SILO_IMAGES_DIR="$S/images"
mkdir -p "$SILO_CACHE_DIR"
source "$S/tests/integration/cache-lib.sh" && link_guest_kernel "$real_cache"

start_daemon || { notok "silod starts"; exit 1; }
namespace_available || { trap cleanup EXIT; skip_all "namespace provider unavailable here: $(api GET /v1/providers)"; }

# sx ID ARGS...: silo exec, stdout and stderr together
sx() { local id=$1; shift; timeout 60 "$SILO" exec "$@" "$id" -- sh -c 'echo $MYVAR $(pwd) $(id -u)' 2>&1; }
PROBE='["sh","-c","echo $MYVAR $(pwd) $(id -u)"]'

# 1. the issue's reproduction, with a workdir that does not exist yet and a user
A=$("$SILO" create --provider namespace -e MYVAR=hello -w /work/dir -u 1234:1234 2>&1)
check "silo create -e -w -u through silod" grep -q '^sb-' <<< "$A"
out=$(sx "$A")
check "exec without env/cwd/user runs with the create's (workdir made): '$out'" test "$out" = "hello /work/dir 1234"
out=$(sx "$A" -e MYVAR=mine -w /)
check "exec -e/-w override them: '$out'" test "$out" = "mine / 1234"
out=$(exec_json "$A" "{\"argv\":$PROBE,\"env\":{\"MYVAR\":\"http\"},\"cwd\":\"/tmp\",\"uid\":0,\"gid\":0}" | ndjson_out)
check "HTTP exec env/cwd/uid override them: '$out'" test "$out" = "http /tmp 0||0"

# 2. raw JSON create, and a hac.toml [sandbox] through silo create -f
B=$(create_ns json-defaults 256 ',"env":{"MYVAR":"json"},"workdir":"/srv/json","user":"4321:4321"')
out=$(exec_json "$B" "{\"argv\":$PROBE}" | ndjson_out)
check "JSON env/workdir/user at create: '$out'" test "$out" = "json /srv/json 4321||0"
printf '[vm]\nname = "toml-defaults"\nprovider = "namespace"\n[sandbox]\nworkdir = "/w"\nuser = "77:77"\n[sandbox.env]\nMYVAR = "toml"\n' > "$TMP/d.toml"
C=$("$SILO" create -f "$TMP/d.toml" 2>&1)
out=$(sx "$C")
check "hac.toml [sandbox] env/workdir/user through silo create -f: '$out'" test "$out" = "toml /w 77"

# 3. bad values are refused at create, naming the field
api POST /v1/sandboxes -H 'Content-Type: application/json' -d '{"provider":"namespace","workdir":"relative"}' > /dev/null
expect_error "a relative workdir is refused" 400 INVALID_CONFIG workdir
api POST /v1/sandboxes -H 'Content-Type: application/json' -d '{"provider":"namespace","user":"nosuchuser"}' > /dev/null
expect_error "a user the sandbox does not know is refused" 400 INVALID_CONFIG nosuchuser

# 4. kill -9 silod, restart: the reattached sandbox keeps its defaults
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon || { notok "silod restarts"; exit 1; }
out=$(sx "$A")
check "after kill -9 and a restart of silod the defaults still apply: '$out'" test "$out" = "hello /work/dir 1234"
for id in "$A" "$B" "$C"; do "$SILO" rm "$id" > /dev/null 2>&1; done

# 5. an imported image's Env/WorkingDir/User through silod, on every provider
bb=$(command -v busybox || true)
[[ -x /bin/busybox ]] && bb=/bin/busybox
fixture_tools=1
for t in buildah skopeo podman debugfs mkfs.ext4; do command -v "$t" > /dev/null || fixture_tools=0; done
if [[ $fixture_tools == 0 || -z "$bb" ]]; then
	ok "image defaults through silod # SKIP buildah, skopeo, podman, e2fsprogs or busybox missing (scripts/setup-debian.sh)"
	exit $FAILED
fi
log() { echo "# $*"; }
source "$S/tests/integration/oci-fixtures.sh" || exit 1
"$SILO" image import "$F/app-layout" --name app > "$TMP/import.out" 2>&1
check "import the test image (Env APP=silo, WorkingDir /srv, User app = 1000)" grep -q app <<< "$("$SILO" image ls 2>&1)"
IPROBE='echo $MYVAR $APP $(pwd) $(id -u)'
for p in namespace qemu kvm; do
	D=$("$SILO" create --provider "$p" --image app 2>&1); rc=$?
	if [[ $rc != 0 ]] && grep -q PROVIDER_UNAVAILABLE <<< "$D"; then
		ok "$p: image defaults through silod # SKIP $D"
		continue
	fi
	out=$(timeout 120 "$SILO" exec "$D" -- sh -c "$IPROBE" 2>&1)
	check "$p: the image's Env, WorkingDir and User are the defaults of silo exec: '$out'" test "$out" = "silo /srv 1000"
	out=$(timeout 120 "$SILO" exec -e APP=mine -w / "$D" -- sh -c "$IPROBE" 2>&1)
	check "$p: exec -e/-w override the image's: '$out'" test "$out" = "mine / 1000"
	E=$("$SILO" create --provider "$p" --image app -e MYVAR=hello -w /work/dir -u root 2>&1)
	out=$(timeout 120 "$SILO" exec "$E" -- sh -c "$IPROBE" 2>&1)
	check "$p: create -e/-w/-u override the image's (workdir made, root by name): '$out'" \
		test "$out" = "hello silo /work/dir 0"
	"$SILO" rm "$D" "$E" > /dev/null 2>&1
done
exit $FAILED
