#include "fdio.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

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
