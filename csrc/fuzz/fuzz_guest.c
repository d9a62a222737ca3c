/* libFuzzer harness: what tdetect (csrc/guest/tdetect.c) parses of the network.
 *
 * Inside a guest, tdetect reads what its peer sends: ICMP echo replies (after their IP
 * header, from a raw socket), UDP echoes, and every IPv4 packet a packet socket sniffs, whose
 * TCP timestamp option it looks for. An input's first byte chooses the parser and its port
 * or sequence number; the rest is the packet, which must never be read past its end (ASan). */
#include <stddef.h>
#include <stdint.h>

#define main tdetect_main
#include "../guest/tdetect.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1); /* exactly its size: ASan sees past it */
    memcpy(copy, data + 1, size - 1);
    peer.s_addr = htonl(0x0a000002); /* 10.0.0.2, as the seeds' packets come from */
    switch (data[0] & 3) {
    case 0:
        is_reply(copy, size - 1, 1, (uint16_t)(data[0] >> 2));
        break;
    case 1:
        is_reply(copy, size - 1, 0, (uint16_t)(data[0] >> 2));
        break;
    default:
        parse_tsval(copy, size - 1, htons((uint16_t)(40000 + (data[0] >> 2))));
    }
    free(copy);
    return 0;
}
