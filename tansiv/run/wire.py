"""What a packet weighs in the simulation."""

# A VM's packets are Ethernet frames without their FCS: on the wire they take at least 64
# bytes with it, plus 8 of preamble and 12 of inter-frame gap.
ETH_MIN_FRAME, ETH_WIRE_EXTRA = 60, 24


def ethernet_wire_size(frame_len: int) -> int:
    return max(frame_len, ETH_MIN_FRAME) + ETH_WIRE_EXTRA
