/* SPDX-License-Identifier: Apache-2.0
 * Fuzz target: the image manifest parser (lib/image/image.c). Any input must
 * either parse into entries that satisfy the documented invariants or fail
 * with INVALID_CONFIG; never crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	image_entry *v = NULL;
	size_t n = 0;
	silo_error err = {0};
	if (image_manifest_parse((const char *)data, size, &v, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (!image_name_valid(v[i].name) || !v[i].file.path || v[i].file.path[0] != '/' ||
			    strlen(v[i].file.sha256) != 64)
				abort();
			if (v[i].kind == IMAGE_KIND_EXT4 && !v[i].initrd.path)
				abort();
		}
		image_entries_free(v, n);
	} else if (err.code != SILO_ERR_INVALID_CONFIG || v != NULL || n != 0) {
		abort();
	}
	return 0;
}
