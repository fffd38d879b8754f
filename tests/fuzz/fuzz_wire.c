/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the host-side decoder: frame length checks + message decode, exactly
 * as the channel reader applies them to bytes from a (hostile) guest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (size - off >= 4) {
		uint32_t len;
		if (!wire_frame_len(data + off, &len) || size - off - 4 < len)
			break;
		wire_msg m;
		char err[160];
		if (wire_decode(data + off + 4, len, &m, err, sizeof err)) {
			/* re-encode what was decoded: must succeed and decode to the same type/id */
			mp_buf b;
			mp_buf_init(&b);
			if (wire_encode(&b, &m)) {
				wire_msg m2;
				if (!wire_decode(b.p + 4, b.len - 4, &m2, err, sizeof err) || m2.type != m.type ||
				    m2.id != m.id || m2.present != m.present)
					abort();
				wire_msg_free(&m2);
			}
			mp_buf_free(&b);
		}
		wire_msg_free(&m);
		off += 4 + len;
	}
	return 0;
}
