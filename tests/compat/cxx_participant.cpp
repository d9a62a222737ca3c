// A C++ participant written the way TANSIV's examples are: the header included inside
// extern "C", a non-const vsg_context*, an std::atomic flag raised by the receive callback.
// It exchanges one message with its peer and prints it.
//   cxx_participant SOCKET ME PEER
#include <arpa/inet.h>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

extern "C" {
#include <tansiv-client.h>
}

static void on_recv(uintptr_t arg)
{
    static_cast<std::atomic<bool>*>(reinterpret_cast<void*>(arg))->store(true);
}

static void on_deadline(uintptr_t, struct timespec) {}

int main(int argc, char* argv[])
{
    if (argc < 4)
        return 2;
    const char* const vsg_argv[] = {"-a", argv[1], "-n", argv[2], "-t", "2020-01-01T00:00:00"};
    std::atomic<bool> arrived(false);
    vsg_context* context = vsg_init(6, vsg_argv, NULL, on_recv, (uintptr_t)&arrived, on_deadline, 0);
    if (!context)
        return 1;
    struct timespec offset;
    if (vsg_start(context, &offset))
        return 1;
    std::string msg = std::string("from ") + argv[2];
    if (vsg_send(context, inet_addr(argv[3]), msg.size() + 1, (const uint8_t*)msg.c_str()))
        return 1;
    while (!arrived.load()) {
    }
    uint8_t buf[MAX_PACKET_SIZE];
    uint32_t src, dst, len = sizeof(buf);
    if (vsg_poll(context) != 0 || vsg_recv(context, &src, &dst, &len, buf))
        return 1;
    struct timeval tv;
    vsg_gettimeofday(context, &tv, NULL);
    printf("offset %ld, got '%s' at %ld.%06ld\n", (long)offset.tv_sec, (const char*)buf,
           (long)tv.tv_sec, (long)tv.tv_usec);
    vsg_stop(context);
    vsg_cleanup(context);
    return 0;
}
