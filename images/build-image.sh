#!/bin/bash
# Build a named Silo guest image and record it in the image manifest.
#
#   images/build-image.sh NAME [--agent PATH] [--silo PATH] [--force]
#
# Names:
#   base    kind initramfs: busybox-static + silo-agent, /init = init-overlay.sh (the
#           initramfs is the lower layer, the scratch disk the upper one)
#   python  kind ext4: Debian bookworm minbase + python3 + pip (read-only root under a
#           tmpfs overlay), plus its loader initramfs (init-overlay.sh + agent)
# Files go to $CACHE/images/NAME/, the manifest is $CACHE/images/manifest.json
# (format: docs/images.md). Each step is skipped when its inputs (scripts, agent
# binary, package list) are unchanged, so a second run takes well under a second.
# The guest kernel must exist (images/build-kernel.sh); the entry records it.
# With --silo (the silo CLI), an ext4 image's root file system is also stored in
# the layer store as its namespace layer (`silo image import - --layers-for NAME`),
# so the namespace provider runs it too; the entry's "oci" member names it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:-}
[[ $# -gt 0 ]] && shift
agent= force=0 silo=
while [[ $# -gt 0 ]]; do
	case "$1" in
	--agent) agent=$2; shift 2 ;;
	--silo) silo=$2; shift 2 ;;
	--force) force=1; shift ;;
	*) echo "build-image: unknown argument $1" >&2; exit 2 ;;
	esac
done
log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
case "$name" in
base|python) ;;
"") die "usage: build-image.sh NAME [--agent PATH] [--force]   (NAME: base, python)" ;;
*) die "unknown image \"$name\" (known: base, python)" ;;
esac
if [[ -z "$agent" ]]; then
	for c in "${SILO_LIBEXEC_DIR:-/nonexistent}/silo-agent" "${SILO_BUILD_ROOT:-/nonexistent}/agent/silo-agent"; do
		[[ -x "$c" ]] && { agent=$c; break; }
	done
fi
[[ -n "$agent" && -x "$agent" ]] || die "silo-agent not found: pass --agent PATH (built at BUILD/agent/silo-agent)"

cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
kcur="$cache/kernel/current"
[[ -f "$kcur/vmlinux" ]] || die "guest kernel missing at $kcur/vmlinux: run images/build-kernel.sh first"
kkey=$(basename "$(readlink -f "$kcur")")
kpath=$(readlink -f "$kcur")/vmlinux
dir="$cache/images/$name"
mkdir -p "$dir"
exec 9>"$cache/images/.build-$name.lock"
flock 9

sha() { sha256sum "$@" | cut -d' ' -f1; }
stamp_ok() { [[ $force -eq 0 && -f "$1" && -f "$1.inputs" && "$(cat "$1.inputs")" == "$2" ]]; }
# build_stamped FILE INPUTS WHAT CMD...: run CMD (it writes FILE) unless FILE's input stamp is INPUTS,
# then stamp FILE; WHAT names it in the log.
build_stamped() {
	local file=$1 inputs=$2 what=$3
	shift 3
	if stamp_ok "$file" "$inputs"; then
		log "$what up to date"
	else
		"$@" >/dev/null
		printf '%s' "$inputs" > "$file.inputs"
	fi
}
agent_sha=$(sha "$agent")
ird_inputs=$(printf '%s\n' "$agent_sha" "$(sha "$here/build-initramfs.sh" "$here/initramfs/init-overlay.sh" | paste -sd' ')" \
	"$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)")

case "$name" in
base)
	kind=initramfs
	file="$dir/initramfs.cpio.gz"
	build_stamped "$file" "$ird_inputs" "base: initramfs" \
		"$here/build-initramfs.sh" --agent "$agent" --out "$file" --mode overlay
	initrd=
	;;
python)
	kind=ext4
	pkgs=python3,python3-pip   # pip: installs from an index the egress allow-list names (docs/network.md)
	file="$dir/rootfs.ext4"
	fs_inputs=$(printf '%s\n' "$pkgs" "$(sha "$here/build-rootfs-debian.sh")")
	build_stamped "$file" "$fs_inputs" "python: rootfs" "$here/build-rootfs-debian.sh" --out "$file" --include "$pkgs"
	initrd="$dir/loader.cpio.gz"
	build_stamped "$initrd" "$ird_inputs" "python: loader initramfs" \
		"$here/build-initramfs.sh" --agent "$agent" --out "$initrd" --mode overlay
	;;
esac

# Hash (cached by the same input stamp + size + mtime) and write the manifest entry.
hash_cached() {
	local f=$1 key
	key="$(stat -c '%s %Y %i' "$f")"
	if [[ -f "$f.sha256" && "$(sed -n 2p "$f.sha256")" == "$key" ]]; then
		sed -n 1p "$f.sha256"
	else
		local h
		h=$(sha "$f")
		printf '%s\n%s\n' "$h" "$key" > "$f.sha256"
		echo "$h"
	fi
}
file_sha=$(hash_cached "$file")
initrd_sha=
[[ -n "$initrd" ]] && initrd_sha=$(hash_cached "$initrd")
# the kernel's sum too: a signed manifest then covers every file that boots
ksha=$(hash_cached "$kpath")

exec 8>"$cache/images/.manifest.lock"
flock 8
SILO_M_NAME=$name SILO_M_KIND=$kind SILO_M_FILE=$file SILO_M_SHA=$file_sha \
SILO_M_INITRD=$initrd SILO_M_INITRD_SHA=$initrd_sha SILO_M_KKEY=$kkey SILO_M_KPATH=$kpath SILO_M_KSHA=$ksha \
SILO_M_MANIFEST="$cache/images/manifest.json" python3 - <<'PY'
import json, os, time
e = os.environ
mpath = e["SILO_M_MANIFEST"]
try:
    with open(mpath) as f:
        m = json.load(f)
    if not isinstance(m, dict) or not isinstance(m.get("images"), list):
        raise ValueError("bad manifest")
except (FileNotFoundError, ValueError):
    m = {"version": 1, "images": []}
def fentry(path, sha):
    return {"path": path, "sha256": sha, "size": os.stat(path).st_size}
ent = {"name": e["SILO_M_NAME"], "kind": e["SILO_M_KIND"]}
ent.update(fentry(e["SILO_M_FILE"], e["SILO_M_SHA"]))
if e["SILO_M_INITRD"]:
    ent["initrd"] = fentry(e["SILO_M_INITRD"], e["SILO_M_INITRD_SHA"])
ent["kernel"] = {"key": e["SILO_M_KKEY"], "path": e["SILO_M_KPATH"],
                 "sha256": e["SILO_M_KSHA"], "size": os.stat(e["SILO_M_KPATH"]).st_size}
old = [i for i in m["images"] if i.get("name") == ent["name"]]
same = old and all(old[0].get(k) == ent[k] for k in ent)
# the namespace layers of the same root file system stay (build-image.sh adds them below)
if old and old[0].get("sha256") == ent["sha256"] and isinstance(old[0].get("oci"), dict) \
        and "image" not in old[0]["oci"]:
    ent["oci"] = old[0]["oci"]
ent["created"] = old[0]["created"] if same and "created" in old[0] else \
    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
m["images"] = [i for i in m["images"] if i.get("name") != ent["name"]] + [ent]
m["images"].sort(key=lambda i: i.get("name", ""))
m["version"] = 1
tmp = mpath + ".tmp"
with open(tmp, "w") as f:
    json.dump(m, f, indent=2)
    f.write("\n")
os.replace(tmp, mpath)
PY
exec 8>&-
log "$name: $kind $file sha256 $file_sha"

# The namespace layer of an ext4 image: its root file system in the layer store.
if [[ $kind == ext4 && -n "$silo" ]]; then
	have=$(SILO_M_NAME=$name SILO_M_MANIFEST="$cache/images/manifest.json" python3 - <<'PY'
import json, os
e = os.environ
with open(e["SILO_M_MANIFEST"]) as f:
    m = json.load(f)
ent = [i for i in m["images"] if i.get("name") == e["SILO_M_NAME"]][0]
ls = ent.get("oci", {}).get("layers", [])
print("yes" if ls and all(os.path.isdir(l["path"]) and "tree" in l for l in ls) else "no")
PY
)
	# the debootstrap tree the root file system was made from (build-rootfs-debian.sh
	# caches it under debootstrap/<key>/, its .silo-complete naming the packages)
	tree=
	for d in "$cache"/images/debootstrap/*/; do
		[[ -f "$d.silo-complete" ]] && grep -qx "packages=$pkgs" "$d.silo-complete" && { tree=${d%/}; break; }
	done
	if [[ $have == yes ]]; then
		log "$name: namespace layer up to date"
	elif [[ -d "$tree" ]]; then
		log "$name: storing $tree as its namespace layer"
		tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' --sort=name -cf - . |
			"$silo" image import - --format rootfs --skip-devices --layers-for "$name" >&2 ||
			die "storing the namespace layer failed"
	else
		log "$name: no namespace layer (no debootstrap tree of \"$pkgs\" in $cache/images/debootstrap)"
	fi
fi
echo "$file"
