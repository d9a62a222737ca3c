/* Both ends of the channel between the coordinator's hub and a participant, in one place, so
 * that they cannot drift apart: the address format, opening the socket (the hub listens and
 * accepts, a participant connects), and the framing of tansiv-protocol.h.
 *
 * Addresses: a Unix stream socket PATH, or tcp:HOST:PORT.
 *
 * Errors are described in a caller's buffer rather than logged: the hub hands its errors to
 * Python, the client logs them. */
#ifndef TANSIV_TRANSPORT_H
#define TANSIV_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tansiv-protocol.h"

/* ---- sockets ---- */

/* Whether address is tcp:HOST:PORT (else a Unix socket path). */
int tsv_is_tcp_address(const char *address);

/* Listens on address, non-blocking (HOST may be empty: every interface; PORT may be 0: any
 * free port). Returns the socket, with the address to connect to in bound (the chosen IPv4
 * address and port for TCP), or -1 with the reason in err. */
int tsv_listen(const char *address, char *bound, size_t bound_len, char *err, size_t err_len);

/* Accepts one pending connection, non-blocking; -1 when none is pending. */
int tsv_accept(int listen_fd);

/* Connects to address, blocking. Returns the socket, or -1 with errno set; when the address
 * itself is at fault (malformed, unresolvable) err also says why, else err is "". */
int tsv_connect(const char *address, char *err, size_t err_len);

/* ---- frames ---- */

/* Writes one frame (header, then len payload bytes) at out, which has room for
 * TSV_HEADER_SIZE + len bytes. Returns the number of bytes written. */
size_t tsv_frame_put(uint8_t *out, uint16_t type, uint16_t flags, uint64_t time, uint32_t src,
                     uint32_t dst, const void *payload, uint32_t len);

/* Checks a received header: 0, or -1 with the reason in err if it announces more payload than
 * the protocol allows, which means the stream lost its framing: no end can recover from that,
 * both drop the connection. */
int tsv_header_check(const struct tsv_header *h, char *err, size_t err_len);

/* The next whole frame of a stream's bytes [*off, len) (the hub's sockets, a relay's
 * connection): 1 with its header in h, *payload pointing into data and *off past it; 0 while
 * it is not all there; -1 with the reason in err for a header tsv_header_check refuses. */
int tsv_frame_next(const uint8_t *data, size_t len, size_t *off, struct tsv_header *h,
                   const uint8_t **payload, char *err, size_t err_len);

/* ---- blocking whole-buffer I/O (the client's socket), restarting after EINTR ---- */

/* 0 on success, -1 with errno set (EPIPE for a closed peer, without SIGPIPE). */
int tsv_write_all(int fd, const void *buf, size_t len);
/* len on success, 0 on end of file before the first byte, -1 with errno set
 * (ECONNRESET for an end of file in the middle of the buffer). */
ssize_t tsv_read_full(int fd, void *buf, size_t len);

#endif
