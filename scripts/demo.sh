#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install everything, build, prepare the
# guest kernel and base image (cached under ~/.cache/silo), run a command in a sandbox
# with the default provider selection (kvm -> qemu -> namespace), print its output
# and the timing; then the same command in the namespace provider for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
BUILD=${SILO_BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release >/dev/null
ninja -C "$BUILD" >/dev/null
echo "== guest image (the kernel build takes ~3 min the first time, then it is cached)"
images/build-kernel.sh >/dev/null
images/build-image.sh base --agent "$BUILD/agent/silo-agent" >/dev/null
SILO="$BUILD/cli/silo"
CMD='echo "hello from $(uname -sr) in a silo sandbox (pid $$, $(nproc) cpu)"'
echo "== silo run (default provider) -- sh -c '$CMD'"
"$SILO" run --time -- sh -c "$CMD"
echo "== silo run --provider namespace -- sh -c '$CMD'"
"$SILO" run --provider namespace --time -- sh -c "$CMD"
