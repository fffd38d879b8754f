#!/usr/bin/env bash
# Test images for the image-import and silo-oci tests, built here with no
# registry: buildah builds a busybox image from scratch (env, workdir, user
# 1000, entrypoint + cmd) and a second image on top of it (a file added, one
# deleted: a whiteout); skopeo exports an OCI layout, podman saves a docker and
# an OCI archive, tar makes a rootfs tarball. Cached under
# $real_cache/test-oci/<key> (key: the busybox binary and this file), so only
# the first run builds. Sourced with real_cache, bb, TMP, log and notok set;
# sets F to the directory.
key=$( { sha256sum "$bb" | cut -d' ' -f1; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16)
F="$real_cache/test-oci/$key"
if [[ ! -f "$F/.complete" ]]; then
	log "building test images into $F"
	mkdir -p "$real_cache/test-oci"
	exec 7>"$real_cache/test-oci/.lock"
	flock 7
fi
if [[ ! -f "$F/.complete" ]]; then
	rm -rf "$F" && mkdir -p "$F"
	st="$TMP/storage"
	BA=(buildah --root "$st/root" --runroot "$st/run" --storage-driver vfs)
	PM=(podman --root "$st/root" --runroot "$st/run" --storage-driver vfs)
	SREF="containers-storage:[vfs@$st/root+$st/run]"
	r="$TMP/rootfs"
	mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/srv"
	chmod 1777 "$r/tmp"
	install -m 0755 "$bb" "$r/bin/busybox"
	for a in sh ls cat echo env id pwd rm sleep kill hostname mkdir touch stat tty head wc grep mount printf \
		test true false seq; do ln -s busybox "$r/bin/$a"; done
	printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv:/bin/sh\n' > "$r/etc/passwd"
	printf 'root:x:0:\napp:x:1000:\nstaff:x:50:app\n' > "$r/etc/group"
	printf 'welcome\n' > "$r/etc/motd"
	printf 'data\n' > "$TMP/data"
	{
		c=$("${BA[@]}" from scratch) &&
		"${BA[@]}" copy "$c" "$r/" / &&
		"${BA[@]}" copy --chown 1000:1000 "$c" "$TMP/data" /srv/data &&
		"${BA[@]}" config --env APP=silo --env PATH=/bin --workingdir /srv --user 1000:1000 \
			--entrypoint '["/bin/sh","-c"]' --cmd '["echo hello"]' "$c" &&
		"${BA[@]}" commit -q "$c" localhost/silo-test-base:1 &&
		c2=$("${BA[@]}" from localhost/silo-test-base:1) &&
		printf 'hello from layer 2\n' > "$TMP/hello" &&
		"${BA[@]}" copy "$c2" "$TMP/hello" /etc/hello &&
		"${BA[@]}" run --isolation chroot --user 0:0 "$c2" -- /bin/rm /etc/motd &&
		"${BA[@]}" commit -q "$c2" localhost/silo-test-app:1 &&
		skopeo copy -q "${SREF}localhost/silo-test-app:1" "oci:$F/app-layout:1" &&
		"${PM[@]}" save -q --format docker-archive -o "$F/app-docker.tar" localhost/silo-test-app:1 &&
		"${PM[@]}" save -q --format oci-archive -o "$F/base-oci.tar" localhost/silo-test-base:1 &&
		tar -C "$r" --numeric-owner -cf "$F/base-rootfs.tar" . &&
		touch "$F/.complete"
	} > "$TMP/build.log" 2>&1 || { sed 's/^/# /' "$TMP/build.log" | tail -20; notok "build the test images"; exit 1; }
	rm -rf "$st"
fi
