"""Packet captures (`tansiv run --pcap`): what each participant sent and received, one file
per participant (pcap/<address>.pcap), for Wireshark or tshark.

The format is pcap's with nanosecond timestamps (magic 0xa1b23c4d): a 24-byte file header,
then per packet a 16-byte record header (seconds, nanoseconds, captured length, original
length) and the captured bytes, all integers in the writer's byte order (little-endian here).
Timestamps are simulated time, its 0 being the Unix epoch: a packet is at its send_ns in its
sender's file and at its deliver_ns in its receiver's (packets.jsonl), to the nanosecond.

Every file is Ethernet (linktype 1). A VM's packets are Ethernet frames, kept as they are. A
process's message is an opaque payload: it is put in a synthetic Ethernet + IPv4 + UDP frame
from the sender's address to the destination's (MACs 52:54:a:b:c:d, as the guests'; UDP port
PORT both ways; UDP checksum 0, i.e. none), so that Wireshark shows who talks to whom. One
linktype for all keeps a mixed deployment's files whole: a VM frame a process receives is
still a frame. A message too long for one IPv4 packet (over 65507 bytes) is cut to what fits;
its record keeps its full length as the original length."""

import ipaddress
import struct
from pathlib import Path

from .wire import mac

MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144          # larger than any frame: the protocol's payloads are <= 64 KiB
PORT = 9                  # "discard": the payload means nothing to Wireshark
ETHERTYPE_IPV4 = 0x0800
IPPROTO_UDP = 17
HEADERS = 14 + 20 + 8     # Ethernet, IPv4, UDP
IP_MAX_DATA = 0xFFFF - 20 - 8


def file_header() -> bytes:
    """Magic, version 2.4, time zone and accuracy 0, snapshot length, linktype."""
    return struct.pack("<IHHiIII", MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)


def record(time_ns: int, data: bytes, size: int) -> bytes:
    """One packet of `size` bytes at time_ns, of which `data` was captured."""
    sec, nsec = divmod(time_ns, 1_000_000_000)
    return struct.pack("<IIII", sec, nsec, len(data), size) + data


def checksum(header: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
    the 16-bit words."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src: str, dst: str, payload: bytes) -> bytes:
    """A process's message as an Ethernet frame carrying an IPv4/UDP datagram."""
    data = payload[:IP_MAX_DATA]
    udp = struct.pack("!HHHH", PORT, PORT, 8 + len(data), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(data), 0, 0, 64,
                     IPPROTO_UDP, 0, ipaddress.IPv4Address(src).packed,
                     ipaddress.IPv4Address(dst).packed)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return mac(dst) + mac(src) + struct.pack("!H", ETHERTYPE_IPV4) + ip + udp + data


class Capture:
    """The run's pcap files, one per participant, written as packets go by. The coordinator
    writes a file's records in time order (docs/design.md, Packet captures)."""

    def __init__(self, folder: Path, names, opener=open):
        """opener(path, mode): the run's (rundir.RunDir.sink), so that a full disk ends the
        run once, naming the file."""
        folder.mkdir(exist_ok=True)
        self._files = {}
        for name in names:
            self._files[name] = f = opener(folder / f"{name}.pcap", "wb")
            f.write(file_header())

    def add(self, owner: str, time_ns: int, sender_role: str, src: str, dst: str,
            payload: bytes) -> None:
        """A packet from src to dst in owner's file (owner: its sender or its receiver)."""
        if sender_role == "vm":
            self._files[owner].write(record(time_ns, payload, len(payload)))
        else:
            self._files[owner].write(record(time_ns, udp_frame(src, dst, payload),
                                            HEADERS + len(payload)))

    def close(self) -> None:
        for f in self._files.values():
            f.close()
