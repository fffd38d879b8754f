#!/usr/bin/env bash
# tests/e2b/test_e2b.sh with every E2B sandbox a QEMU guest (the base image, TCG here).
export E2B_TEST_PROVIDER=qemu
exec bash "$(dirname "$0")/test_e2b.sh"
