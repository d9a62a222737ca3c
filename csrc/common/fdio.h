/* Blocking whole-buffer I/O on file descriptors, restarting after EINTR. */
#ifndef TANSIV_FDIO_H
#define TANSIV_FDIO_H

#include <stddef.h>
#include <sys/types.h>

/* 0 on success, -1 with errno set (EPIPE for a closed peer). */
int tsv_write_all(int fd, const void *buf, size_t len);
/* len on success, 0 on end of file before the first byte, -1 with errno set
 * (ECONNRESET for an end of file in the middle of the buffer). */
ssize_t tsv_read_full(int fd, void *buf, size_t len);

#endif
