"""Facts of the wire: what a packet weighs in the simulation, and a participant's MAC."""

import ipaddress
import zlib

# A VM's packets are Ethernet frames without their FCS: on the wire they take at least 64
# bytes with it, plus 8 of preamble and 12 of inter-frame gap.
ETH_MIN_FRAME, ETH_WIRE_EXTRA = 60, 24


def ethernet_wire_size(frame_len: int) -> int:
    return max(frame_len, ETH_MIN_FRAME) + ETH_WIRE_EXTRA


FLOW_HEAD = 38  # Ethernet (14), IPv4 without options (20), ports (4)


def flow(frame: bytes) -> int:
    """The flow of an Ethernet frame as fq_codel tells flows apart (IPv4's protocol and
    addresses, and TCP's or UDP's ports), as a 32-bit number; 0 for other frames (then the
    sender and destination are the flow)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return 0
    proto, ihl = frame[23], (frame[14] & 0x0F) * 4
    key = frame[23:24] + frame[26:34]
    if proto in (6, 17) and ihl == 20 and len(frame) >= 38:
        key += frame[34:38]
    return zlib.crc32(key) or 1


def mac(address: str) -> bytes:
    """52:54:a:b:c:d for a.b.c.d: every guest knows every peer's MAC without ARP (the guests'
    /init, images/guest/initramfs/init, computes the same), and pcap files show the same."""
    return b"\x52\x54" + ipaddress.IPv4Address(address).packed


def mac_text(address: str) -> str:
    return ":".join(f"{b:02x}" for b in mac(address))
