/* SPDX-License-Identifier: Apache-2.0
 * The I/O thread behind a device with a host-side backend (vsock.c, net.c;
 * virtio.h, virtio_io): the device writes the eventfd wake_fd when the guest
 * gave work, the thread polls it with the backend's descriptors and takes
 * env.lock for every step; stop is guarded by env.lock.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtio.h"
#include "common/error.h"

int virtio_io_init(virtio_io *io)
{
	io->started = io->stop = false;
	io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return io->wake_fd < 0 ? -1 : 0;
}

int virtio_io_start(virtio_io *io, const vsock_env *env, void *(*fn)(void *), void *arg, const char *what,
		    silo_error *err)
{
	io->env = *env;
	int e = pthread_create(&io->thread, NULL, fn, arg);
	if (e)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "%s: start thread", what);
	io->started = true;
	return 0;
}

bool virtio_io_notify_start(virtio_io *io, virtio_mmio *t, void *(*fn)(void *), void *arg)
{
	if (io->started)
		return true;
	vsock_env env = virtio_mmio_io_env(t);
	return virtio_io_start(io, &env, fn, arg, t->ops->name, NULL) == 0;
}

void virtio_io_wake(virtio_io *io)
{
	uint64_t one = 1;
	if (write(io->wake_fd, &one, sizeof one) < 0) {
		/* counter saturated: the thread is awake anyway */
	}
}

void virtio_io_drain(virtio_io *io)
{
	uint64_t v;
	if (read(io->wake_fd, &v, sizeof v) < 0) {
		/* nonblocking: nothing to clear */
	}
}

void virtio_io_stop(virtio_io *io)
{
	if (io->started) {
		pthread_mutex_lock(io->env.lock);
		io->stop = true;
		pthread_mutex_unlock(io->env.lock);
		virtio_io_wake(io);
		pthread_join(io->thread, NULL);
		io->started = false;
	}
	if (io->wake_fd >= 0)
		close(io->wake_fd);
	io->wake_fd = -1;
}
