"""Facts of the wire: what a packet weighs in the simulation, and a participant's MAC."""

import ipaddress

# A VM's packets are Ethernet frames without their FCS: on the wire they take at least 64
# bytes with it, plus 8 of preamble and 12 of inter-frame gap.
ETH_MIN_FRAME, ETH_WIRE_EXTRA = 60, 24


def ethernet_wire_size(frame_len: int) -> int:
    return max(frame_len, ETH_MIN_FRAME) + ETH_WIRE_EXTRA


def mac(address: str) -> bytes:
    """52:54:a:b:c:d for a.b.c.d: every guest knows every peer's MAC without ARP (the guests'
    /init, images/guest/initramfs/init, computes the same), and pcap files show the same."""
    return b"\x52\x54" + ipaddress.IPv4Address(address).packed


def mac_text(address: str) -> str:
    return ":".join(f"{b:02x}" for b in mac(address))
