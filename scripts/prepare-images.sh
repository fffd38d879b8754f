#!/usr/bin/env bash
# Prepare guest images for the test suite: the guest kernel and the "base" and
# "python" images (docs/images.md). Idempotent and cached under ~/.cache/silo:
# when nothing changed it finishes in about a second.
#
#   scripts/prepare-images.sh BUILD_DIR
#
# BUILD_DIR is the meson build directory holding agent/silo-agent.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: prepare-images.sh BUILD_DIR}
agent="$build/agent/silo-agent"
[[ -x "$agent" ]] || { echo "prepare-images: $agent missing (run ninja -C $build first)" >&2; exit 1; }
start=$(date +%s)
images/build-kernel.sh >/dev/null
images/build-image.sh base --agent "$agent" >/dev/null
images/build-image.sh python --agent "$agent" --silo "$build/cli/silo" >/dev/null
echo "prepare-images: kernel and images ready in $(( $(date +%s) - start ))s" >&2
