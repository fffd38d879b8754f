#!/usr/bin/env bash
# Sourced by tests that keep a private image cache (SILO_CACHE_DIR under their
# temp dir, so imports and built disks never touch the shared one).
# link_guest_kernel REAL_CACHE: link REAL_CACHE's guest kernel into
# $SILO_CACHE_DIR, so the VM providers boot without building one; nothing when
# REAL_CACHE has none (the VM parts of the test then skip).
link_guest_kernel() {
	[[ -e "$1/kernel/current/vmlinux" ]] || return 0
	local kk
	kk=$(readlink -f "$1/kernel/current")
	mkdir -p "$SILO_CACHE_DIR/kernel"
	ln -sfn "$kk" "$SILO_CACHE_DIR/kernel/$(basename "$kk")" &&
		ln -sfn "$(basename "$kk")" "$SILO_CACHE_DIR/kernel/current"
}
