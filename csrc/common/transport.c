/* See transport.h. Built into the hub, the client library and QEMU's tantap. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define TCP_PREFIX "tcp:"
#define LISTEN_BACKLOG 256

/* The header is copied to and from the wire as it is in memory: this holds on every supported
 * host (little-endian, and the fields leave no padding). */
_Static_assert(sizeof(struct tsv_header) == TSV_HEADER_SIZE, "the header's layout is the wire's");

/* ---- addresses ---------------------------------------------------------------------------- */

int tsv_is_tcp_address(const char *address)
{
    return strncmp(address, TCP_PREFIX, strlen(TCP_PREFIX)) == 0;
}

/* A Unix socket address; -1 with err set if path does not fit. Each end keeps the wording it
 * has always used: users' scripts and tests match them. */
static int unix_address(const char *path, int listening, struct sockaddr_un *sa, char *err,
                        size_t err_len)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        snprintf(err, err_len,
                 listening ? "socket path longer than %zu bytes: %s"
                           : "socket path too long (max %zu bytes): %s",
                 sizeof(sa->sun_path) - 1, path);
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa->sun_path, path);
    return 0;
}

/* Resolves spec, what follows "tcp:". A listener may leave HOST empty (loopback: reaching
 * beyond takes naming the address, 0.0.0.0 for every interface) and takes IPv4, whose address
 * it reports; a participant takes whatever HOST resolves to.
 * NULL with errno and err set on failure. */
static struct addrinfo *resolve_tcp(const char *spec, int listening, char *err, size_t err_len)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || (colon == spec && !listening) || (size_t)(colon - spec) >= sizeof(host)) {
        snprintf(err, err_len, "bad TCP address 'tcp:%s': expected tcp:HOST:PORT", spec);
        errno = EINVAL;
        return NULL;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct addrinfo hints = {.ai_family = listening ? AF_INET : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host[0] ? host : "127.0.0.1", colon + 1, &hints, &res);
    if (rc) {
        snprintf(err, err_len, "cannot resolve 'tcp:%s': %s", spec, gai_strerror(rc));
        errno = EHOSTUNREACH;
        return NULL;
    }
    return res;
}

/* Frames are small and every round waits for them: none may wait for Nagle's algorithm.
 * Fails, harmlessly, on a Unix socket. */
static void send_without_delay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- the hub's end ------------------------------------------------------------------------ */

static int bind_and_listen(const struct sockaddr *sa, socklen_t sa_len, const char *address,
                           char *err, size_t err_len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && sa->sa_family != AF_UNIX) {
        int one = 1; /* a new run may take the port of one that just ended */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, sa, sa_len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", address, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int tsv_listen(const char *address, char *bound, size_t bound_len, char *err, size_t err_len)
{
    if (!tsv_is_tcp_address(address)) {
        struct sockaddr_un sa;
        if (unix_address(address, 1, &sa, err, err_len))
            return -1;
        int fd = bind_and_listen((struct sockaddr *)&sa, sizeof(sa), address, err, err_len);
        if (fd >= 0)
            snprintf(bound, bound_len, "%s", address);
        return fd;
    }
    struct addrinfo *res = resolve_tcp(address + strlen(TCP_PREFIX), 1, err, err_len);
    if (!res)
        return -1;
    int fd = bind_and_listen(res->ai_addr, res->ai_addrlen, address, err, err_len);
    freeaddrinfo(res);
    if (fd >= 0) {
        struct sockaddr_in sin;
        socklen_t len = sizeof(sin);
        char ip[INET_ADDRSTRLEN] = "?";
        if (getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
            inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
        snprintf(bound, bound_len, "tcp:%s:%u", ip, ntohs(sin.sin_port));
    }
    return fd;
}

int tsv_accept(int listen_fd)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        send_without_delay(fd);
    return fd;
}

/* ---- a participant's end ------------------------------------------------------------------ */

/* connect(), closing fd on failure with errno kept. */
static int connect_or_close(int fd, const struct sockaddr *sa, socklen_t sa_len)
{
    if (connect(fd, sa, sa_len) == 0)
        return fd;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int tsv_connect(const char *address, char *err, size_t err_len)
{
    err[0] = '\0';
    if (!tsv_is_tcp_address(address)) {
        struct sockaddr_un sa;
        if (unix_address(address, 0, &sa, err, err_len))
            return -1;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return fd < 0 ? -1 : connect_or_close(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    struct addrinfo *res = resolve_tcp(address + strlen(TCP_PREFIX), 0, err, err_len);
    if (!res)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0)
            fd = connect_or_close(fd, ai->ai_addr, ai->ai_addrlen);
    }
    freeaddrinfo(res);
    if (fd >= 0)
        send_without_delay(fd);
    return fd;
}

/* ---- frames ------------------------------------------------------------------------------- */

size_t tsv_frame_put(uint8_t *out, uint16_t type, uint16_t flags, uint64_t time, uint32_t src,
                     uint32_t dst, const void *payload, uint32_t len)
{
    struct tsv_header h = {.type = type, .flags = flags, .len = len, .time = time,
                           .src = src, .dst = dst};
    memcpy(out, &h, TSV_HEADER_SIZE);
    if (len)
        memcpy(out + TSV_HEADER_SIZE, payload, len);
    return TSV_HEADER_SIZE + (size_t)len;
}

int tsv_header_check(const struct tsv_header *h, char *err, size_t err_len)
{
    if (h->len <= TSV_MAX_PAYLOAD)
        return 0;
    snprintf(err, err_len, "frame of type %u announces %u bytes (max %u)", h->type, h->len,
             TSV_MAX_PAYLOAD);
    return -1;
}

int tsv_frame_next(const uint8_t *data, size_t len, size_t *off, struct tsv_header *h,
                   const uint8_t **payload, char *err, size_t err_len)
{
    if (len - *off < TSV_HEADER_SIZE)
        return 0;
    memcpy(h, data + *off, TSV_HEADER_SIZE);
    if (tsv_header_check(h, err, err_len))
        return -1;
    if (len - *off < TSV_HEADER_SIZE + h->len)
        return 0;
    *payload = data + *off + TSV_HEADER_SIZE;
    *off += TSV_HEADER_SIZE + h->len;
    return 1;
}

/* ---- blocking I/O ------------------------------------------------------------------------- */

int tsv_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        /* send() with MSG_NOSIGNAL: a vanished peer is an error, not a SIGPIPE. */
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t tsv_read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            if (done == 0)
                return 0;
            errno = ECONNRESET;
            return -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}
