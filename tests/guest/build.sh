#!/bin/sh
# Assemble a guest payload (GNU as) and link it: build.sh SRC OUT flat|elf TEXT_ADDR
set -eu
src=$1 out=$2 kind=$3 addr=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as --64 -I "$(dirname "$src")" -o "$tmp/p.o" "$src"
ld -m elf_x86_64 --no-warn-rwx-segments -nostdlib -N -static -Ttext="$addr" -e _start -o "$tmp/p.elf" "$tmp/p.o"
if [ "$kind" = flat ]; then
	objcopy -O binary -j .text "$tmp/p.elf" "$out"
else
	cp "$tmp/p.elf" "$out"
fi
