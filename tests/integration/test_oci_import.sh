#!/usr/bin/env bash
# `silo image import` with real images built here, no registry: buildah builds a
# busybox image from scratch and a second image on top of it (one more layer
# that adds a file and deletes one, i.e. a whiteout); skopeo exports an OCI
# layout, podman saves a docker archive and an OCI archive, tar makes rootfs
# tarballs (gzip, zstd, xz). Each is imported into a private cache and checked:
# the layer trees, the ext4 root disk (debugfs), the config defaults, the shared
# layer stored once, ls/inspect/rm/gc, refusals through the CLI, the python
# image's root file system as a tarball, and the imported image booting under
# QEMU. The built images are cached under $CACHE/test-oci/<key> (key: busybox
# binary + fixture version), so a second run only imports. TAP on stdout.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
S=${SILO_SOURCE_ROOT:?}
SILO="$B/cli/silo"
. "$(dirname "$0")/../tap.sh"
[[ $(id -u) -eq 0 ]] || skip_all "image import needs root"
for t in buildah skopeo podman debugfs mkfs.ext4 zstd xz; do
	command -v "$t" >/dev/null || skip_all "$t not installed (scripts/setup-debian.sh installs it)"
done
bb=$(command -v busybox || true)
[[ -x /bin/busybox ]] && bb=/bin/busybox
[[ -n "$bb" ]] || skip_all "busybox not installed"
real_cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
TMP=$(mktemp -d /tmp/silo-oci-it.XXXXXX)
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT
log() { echo "# $*"; }

# ---- fixtures (cached, shared with the silo-oci tests): sets F ----
source "$S/tests/integration/oci-fixtures.sh" || exit 1

export SILO_CACHE_DIR="$TMP/cache" SILO_IMAGES_DIR="$S/images"
export SILO_STATE_DIR="$TMP/state" SILO_RUNTIME_DIR="$TMP/run"
mkdir -p "$SILO_CACHE_DIR"
source "$S/tests/integration/cache-lib.sh" && link_guest_kernel "$real_cache"
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
ext4_of() { "$SILO" image inspect "$1" | j 'd["path"]'; }
dfs() { debugfs -R "$2" "$1" 2>/dev/null; }
timed_import() { # NAME SOURCE [ARGS...]: import, print the seconds taken
	local name=$1 src=$2; shift 2
	local t0 t1
	t0=$(date +%s%N)
	"$SILO" image import "$src" --name "$name" "$@" > "$TMP/import-$name.out" 2>&1 || return 1
	t1=$(date +%s%N)
	log "import $name: $(( (t1 - t0) / 1000000 )) ms: $(head -1 "$TMP/import-$name.out")"
}

# 1. OCI image layout directory (skopeo)
check "import an OCI image layout (skopeo copy ... oci:DIR)" timed_import app "$F/app-layout"
insp=$("$SILO" image inspect app)
check "inspect: format oci, 2 layers, tagged 1" test "$(j 'd["image"]["format"], len(d["image"]["layers"]), d["image"]["ref"]' <<<"$insp")" = "('oci', 2, '1')"
check "inspect: the config defaults (Env, WorkingDir, User, Entrypoint, Cmd)" \
	test "$(j 'd["defaults"] == {"env": ["APP=silo", "PATH=/bin"], "working_dir": "/srv", "user": "1000:1000", "entrypoint": ["/bin/sh", "-c"], "cmd": ["echo hello"]}' <<<"$insp")" = True
top=$(j 'd["lowerdirs"][0]' <<<"$insp")
bottom=$(j 'd["lowerdirs"][1]' <<<"$insp")
check "top layer: /etc/hello added, /etc/motd a whiteout (0:0 character device)" \
	bash -c "[[ \$(cat '$top/etc/hello') == 'hello from layer 2' && \$(stat -c '%F %t:%T' '$top/etc/motd') == 'character special file 0:0' ]]"
check "bottom layer: busybox, applet symlinks, owners kept" \
	bash -c "[[ -x '$bottom/bin/busybox' && \$(readlink '$bottom/bin/sh') == busybox && \$(stat -c %u:%g '$bottom/srv/data') == 1000:1000 ]]"
img=$(ext4_of app)
check "ext4: /etc/hello from the top layer" test "$(dfs "$img" 'cat /etc/hello')" = "hello from layer 2"
check "ext4: /etc/motd deleted by the whiteout" bash -c "! debugfs -R 'ls /etc' '$img' 2>/dev/null | grep -q motd"
check "ext4: /bin/busybox mode 0755, /srv/data owned by 1000" \
	bash -c "debugfs -R 'stat /bin/busybox' '$img' 2>/dev/null | grep -q 'Mode:  0755' && debugfs -R 'stat /srv/data' '$img' 2>/dev/null | grep -q 'User:  1000'"
check "the manifest entry is an ext4 image with its loader" test "$(j 'd["kind"], d["initrd"]["path"].endswith("loader.cpio.gz")' <<<"$insp")" = "('ext4', True)"

# 2. OCI archive (podman save --format oci-archive) of the base image: its layer is app's bottom layer
check "import an OCI archive (podman save --format oci-archive)" timed_import base "$F/base-oci.tar"
check "the base layer was not stored again (0 new)" grep -q "0 new, 1 already stored" "$TMP/import-base.out"
check "the layer store holds 2 layers for 2 images" test "$(ls "$SILO_CACHE_DIR/oci/layers/sha256" | wc -l)" = 2

# 3. docker archive (podman save --format docker-archive)
check "import a docker archive (podman save --format docker-archive)" timed_import app-docker "$F/app-docker.tar"
check "docker archive: both layers already stored, same defaults" bash -c "grep -q '0 new, 2 already stored' '$TMP/import-app-docker.out' &&
	[[ \"\$('$SILO' image inspect app-docker | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"defaults\"][\"working_dir\"])')\" == /srv ]]"
check "docker archive: the same tree in ext4" test "$(dfs "$(ext4_of app-docker)" 'cat /etc/hello')" = "hello from layer 2"

# 4. rootfs tarballs: plain, gzip, zstd, xz are one layer (same diff_id)
gzip -c "$F/base-rootfs.tar" > "$TMP/r.tar.gz"
zstd -q -c "$F/base-rootfs.tar" > "$TMP/r.tar.zst"
xz -T1 -c "$F/base-rootfs.tar" > "$TMP/r.tar.xz"
check "import a rootfs tarball (.tar.gz)" timed_import rootfs-gz "$TMP/r.tar.gz"
check "import the same tree as .tar.zst and .tar.xz: stored once" bash -c "
	'$SILO' image import '$TMP/r.tar.zst' --name rootfs-zst > '$TMP/zst.out' &&
	'$SILO' image import '$TMP/r.tar.xz' --name rootfs-xz > '$TMP/xz.out' &&
	grep -q '0 new' '$TMP/zst.out' && grep -q '0 new' '$TMP/xz.out'"
check "rootfs image: format rootfs, no defaults" test "$("$SILO" image inspect rootfs-gz | j 'd["image"]["format"], d["defaults"]')" = "('rootfs', {})"
check "rootfs image: the tree in ext4" test "$(dfs "$(ext4_of rootfs-gz)" 'cat /etc/motd')" = welcome

# 5. ls, --json
out=$("$SILO" image ls)
log "$(echo "$out" | head -8 | tr '\n' '|')"
check "ls lists the imported images with layers and sizes" bash -c "grep -q '^app  *ext4+oci  *2 ' <<<'$out' && grep -q '^layer store: 3 layers' <<<'$out'"
check "ls --json: app shares its bottom layer (shared > 0), logical size counted" \
	test "$("$SILO" image ls --json | j '[(i["layers"], i["shared"] > 0, i["logical"] > 1000000) for i in d if i["name"] == "app"][0]')" = "(2, True, True)"

# 5b. the signed manifest covers imported images (a keyring makes every boot check it)
if [[ -e "$SILO_CACHE_DIR/kernel/current/vmlinux" ]]; then
	export SILO_KEYRING_DIR="$TMP/keyring"
	"$SILO" trust keygen -p "$TMP/k.pub" -s "$TMP/k.sec" > /dev/null 2>&1 && "$SILO" trust add-key "$TMP/k.pub" > /dev/null
	err=$("$SILO" trust check-boot --image app-docker 2>&1); rc=$?
	check "with a keyring, an imported image whose manifest is unsigned does not pass the boot check" \
		bash -c "[[ $rc != 0 ]] && grep -q CHECKSUM_MISMATCH <<<'$err'"
	"$SILO" trust sign -s "$TMP/k.sec" > /dev/null 2>&1
	check "after silo trust sign, its root disk, loader and kernel match the signed manifest" \
		bash -c "'$SILO' trust check-boot --image app-docker | grep -q 'match the signed manifest'"
	unset SILO_KEYRING_DIR
else
	ok "signed manifest covers imported images # SKIP no guest kernel (scripts/prepare-images.sh)"
fi

# 6. refusals through the CLI
python3 - "$TMP/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    ti = tarfile.TarInfo("../../escape"); ti.size = 1
    t.addfile(ti, io.BytesIO(b"x"))
PY
err=$("$SILO" image import "$TMP/evil.tar" --name evil 2>&1); rc=$?
check "a traversal archive: exit 125, INVALID_CONFIG naming the entry" \
	bash -c "[[ $rc == 125 ]] && grep -q 'INVALID_CONFIG' <<<'$err' && grep -q 'entry \"../../escape\"' <<<'$err'"
check "nothing escaped next to the cache" test ! -e "$TMP/escape" -a ! -e "$SILO_CACHE_DIR/escape"
err=$("$SILO" image import "$TMP/r.tar.gz" --name big --max-size 64K 2>&1); rc=$?
check "--max-size: RESOURCE_EXCEEDED" bash -c "[[ $rc == 125 ]] && grep -q RESOURCE_EXCEEDED <<<'$err'"
err=$("$SILO" image import "$F/app-layout" --name app 2>&1); rc=$?
check "importing over an existing name: CONFLICT unless --force" bash -c "[[ $rc == 125 ]] && grep -q CONFLICT <<<'$err'"
check "--force replaces it" bash -c "'$SILO' image import '$F/app-layout' --name app --force > /dev/null"

# 7. rm + gc
"$SILO" image rm app > /dev/null && "$SILO" image rm app-docker > /dev/null
gcout=$("$SILO" image gc)
log "$gcout"
check "gc after rm: app's top layer removed, the shared bottom layer kept" \
	bash -c "grep -q '^removed 1 layer' <<<'$gcout' && [[ \$(ls '$SILO_CACHE_DIR/oci/layers/sha256' | wc -l) == 2 ]]"
check "the remaining images are intact" test "$(dfs "$(ext4_of base)" 'cat /etc/motd')" = welcome

# 8. the python image's root file system as a tarball
tree=$(ls -d "$real_cache"/images/debootstrap/*/ 2>/dev/null | head -1)
if [[ -n "$tree" && -f "$tree/.silo-complete" ]]; then
	ptar="$real_cache/test-oci/python-$(basename "$tree").tar"
	if [[ ! -f "$ptar" ]]; then
		tar -C "$tree" --numeric-owner --xattrs -cf "$ptar.tmp" . && mv -f "$ptar.tmp" "$ptar"
	fi
	check "import the python image's root file system as a tarball (--skip-devices: debootstrap's /dev)" \
		timed_import py "$ptar" --skip-devices
	check "its device nodes were dropped and reported" grep -q "device nodes: .*dev/null" "$TMP/import-py.out"
	pimg=$(ext4_of py)
	check "python rootfs: /usr/bin/python3.11 and its libraries in ext4" \
		bash -c "debugfs -R 'stat /usr/bin/python3.11' '$pimg' 2>/dev/null | grep -q 'Type: regular' &&
			debugfs -R 'ls /usr/lib/python3.11' '$pimg' 2>/dev/null | grep -q os.py"
else
	ok "import the python rootfs # SKIP the python image's debootstrap tree is not cached (scripts/prepare-images.sh)"
fi

# 9. an imported image boots under QEMU (the qemu provider needs no change: it is an ext4 entry)
if [[ -e "$SILO_CACHE_DIR/kernel/current/vmlinux" ]] && command -v qemu-system-x86_64 >/dev/null && [[ "${SILO_SKIP_VM_TESTS:-}" != 1 ]]; then
	"$SILO" image import "$F/app-layout" --name app > /dev/null
	out=$(timeout 120 "$SILO" run --provider qemu --image app -- /bin/cat /etc/hello 2>&1); rc=$?
	check "silo run --provider qemu --image app prints the file of the top layer" bash -c "[[ $rc == 0 ]] && [[ '$out' == 'hello from layer 2' ]]"
	out=$(timeout 120 "$SILO" run --provider qemu --image app -- /bin/sh -c 'ls /etc; id -u' 2>&1)
	check "in the VM: the whiteout hides /etc/motd" bash -c "! grep -q motd <<<'$out' && grep -q hello <<<'$out'"
	out=$(timeout 120 "$SILO" run --provider qemu --image app 2>&1)
	check "in the VM: no command runs the image's Entrypoint + Cmd" test "$out" = hello
	out=$(timeout 120 "$SILO" run --provider qemu --image app -- /bin/sh -c 'echo $(id -u) $(pwd) $APP' 2>&1)
	check "in the VM: the image's User, WorkingDir and Env are the defaults" test "$out" = "1000 /srv silo"
else
	ok "boot the imported image under QEMU # SKIP no guest kernel or qemu (scripts/prepare-images.sh), or SILO_SKIP_VM_TESTS=1"
fi

# 10. the namespace provider runs imported images: their layers under the agent layer
"$SILO" image import "$F/app-layout" --name app --force > /dev/null 2>&1
ns=$(timeout 60 "$SILO" run --provider namespace -- true 2>&1)
if [[ $? != 0 ]] && grep -q PROVIDER_UNAVAILABLE <<< "$ns"; then
	ok "namespace provider runs imported images # SKIP the namespace provider is unavailable: $ns"
else
	out=$(timeout 60 "$SILO" run --provider namespace --image app -- /bin/sh -c 'cat /etc/hello; ls /etc; ls -a /' 2>&1)
	check "namespace: the top layer's file, the whiteout hides /etc/motd, the agent under /.silo only" \
		bash -c "grep -q 'hello from layer 2' <<< '$out' && ! grep -q motd <<< '$out' && grep -qx .silo <<< '$out' && ! grep -q sbin <<< '$out'"
	out=$(timeout 60 "$SILO" run --provider namespace --image app 2>&1)
	check "namespace: no command runs the image's Entrypoint + Cmd" test "$out" = hello
	out=$(timeout 60 "$SILO" run --provider namespace --image app -- /bin/sh -c 'echo $(id -u) $(id -g) $(pwd) $APP $PATH' 2>&1)
	check "namespace: User, WorkingDir and Env are the defaults" test "$out" = "1000 1000 /srv silo /bin"
	out=$(timeout 60 "$SILO" run --provider namespace --image app -e APP=mine -w / -- /bin/sh -c 'echo $(pwd) $APP' 2>&1)
	check "namespace: the command line overrides them (-e, -w)" test "$out" = "/ mine"
	printf '[vm]\nname = "u"\nprovider = "namespace"\n[boot]\nimage = "app"\n[sandbox]\nuser = "root"\nworkdir = "/new/dir"\n' > "$TMP/u.toml"
	out=$(timeout 60 "$SILO" run --spec "$TMP/u.toml" -- /bin/sh -c 'echo $(id -u) $(pwd)' 2>&1)
	check "namespace: [sandbox] user (a name, from the image's /etc/passwd) and a missing workdir made" test "$out" = "0 /new/dir"
	printf '[vm]\nname = "u"\nprovider = "namespace"\n[boot]\nimage = "app"\n[sandbox]\nuser = "nosuch"\n' > "$TMP/u.toml"
	timeout 60 "$SILO" run --spec "$TMP/u.toml" -- true > "$TMP/u.err" 2>&1; rc=$?
	check "namespace: a user the image does not know is refused, naming it" \
		bash -c "[[ $rc != 0 ]] && grep -q 'no user .nosuch.' '$TMP/u.err'"
	# gc leaves the layers of a running sandbox alone
	timeout 60 "$SILO" run --provider namespace --image app -- /bin/sleep 3 > /dev/null 2>&1 &
	bg=$!
	sleep 1
	"$SILO" image rm app > /dev/null
	gcout=$("$SILO" image gc 2>&1)
	check "gc while a sandbox runs the image: its layers are busy, not removed" \
		bash -c "grep -q 'in use' <<< '$gcout' || grep -q 'busy' <<< '$gcout'; [[ -d '$top' ]]"
	wait $bg
	check "the sandbox ran to its end on its layers" test $? = 0
	"$SILO" image gc > /dev/null
	check "after it ended gc removes them" test ! -d "$top"
	# with a keyring the layers must be signed
	"$SILO" image import "$F/app-layout" --name app > /dev/null 2>&1
	top=$("$SILO" image inspect app | j 'd["lowerdirs"][0]')
	export SILO_KEYRING_DIR="$TMP/keyring2"
	"$SILO" trust keygen -p "$TMP/k2.pub" -s "$TMP/k2.sec" > /dev/null 2>&1 && "$SILO" trust add-key "$TMP/k2.pub" > /dev/null
	err=$(timeout 60 "$SILO" run --provider namespace --image app -- true 2>&1); rc=$?
	check "keyring: an unsigned manifest refuses the image's layers" bash -c "[[ $rc != 0 ]] && grep -q CHECKSUM_MISMATCH <<< '$err'"
	"$SILO" image build namespace > /dev/null 2>&1 && "$SILO" trust sign -s "$TMP/k2.sec" > /dev/null 2>&1
	out=$(timeout 60 "$SILO" run --provider namespace --image app -- /bin/cat /etc/hello 2>&1)
	check "keyring: signed (the layers' tree digests, the agent layer recorded by image build namespace): it runs" \
		test "$out" = "hello from layer 2"
	echo tampered >> "$top/etc/hello"
	err=$(timeout 60 "$SILO" run --provider namespace --image app -- true 2>&1); rc=$?
	check "keyring: a layer changed after signing is refused (has digest)" \
		bash -c "[[ $rc != 0 ]] && grep -q 'has digest' <<< '$err' && grep -q 'layer sha256:' <<< '$err'"
	unset SILO_KEYRING_DIR
	# the python image (built by images/) runs on the namespace provider from its layer
	if SILO_CACHE_DIR="$real_cache" "$SILO" image inspect python 2> /dev/null | grep -q '"kind": "ext4"' &&
		python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); e=[i for i in m["images"] if i["name"]=="python"][0]; sys.exit(0 if e.get("oci",{}).get("layers") else 1)' "$real_cache/images/manifest.json"; then
		out=$(SILO_CACHE_DIR="$real_cache" timeout 120 "$SILO" run --provider namespace --image python -- python3 -c 'print(6*7)' 2>&1)
		check "namespace: the python image runs (python3 -c 'print(6*7)')" test "$out" = 42
	else
		ok "namespace: the python image runs # SKIP its namespace layer is not stored (scripts/prepare-images.sh stores it)"
	fi
fi
exit $((FAILED > 0))
