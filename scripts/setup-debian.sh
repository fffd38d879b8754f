#!/usr/bin/env bash
# Install everything Silo needs on Debian 12 (idempotent). Run as root or with sudo.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(
  # build
  meson ninja-build pkg-config gcc clang-14 libclang-rt-14-dev llvm-14 musl-tools python3
  # libraries (docs/architecture.md says why each)
  libjansson-dev libsqlite3-dev libseccomp-dev libsodium-dev libmicrohttpd-dev libcap-dev
  libcurl4-openssl-dev libgnutls28-dev
  # sandbox networking (docs/network.md): passt for VMs' virtio-net, pasta for namespace sandboxes,
  # both run under Silo's egress filter by silo-net
  passt
  zlib1g-dev libzstd-dev liblzma-dev   # image import: gzip, zstd and xz layers and tarballs (lib/oci)
  nettle-dev   # SHA-1 of the WebSocket handshake (lib/common/ws.c); already pulled in by libmicrohttpd-dev
  # guest images and providers (e2fsprogs: also mkfs.ext4 for the disk_mb disks of every provider)
  busybox-static qemu-system-x86 linux-source-6.1 flex bison bc libelf-dev libssl-dev cpio
  lz4 zstd e2fsprogs debootstrap xz-utils
  # tests and benchmarks
  bubblewrap hyperfine minisign iproute2 procps psmisc curl sqlite3 util-linux
  # image import tests: build real images locally (buildah), export an OCI layout (skopeo)
  # and docker/OCI archives (podman save); no registry is contacted
  buildah skopeo podman
  # silo-oci tests and bench/oci.sh: the engines that drive it unchanged (podman above),
  # containerd's runc shim (ctr), docker.io's dockerd, and crun to measure against
  containerd docker.io crun
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
