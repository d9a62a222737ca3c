"""TANSIV deployment files: which program runs on which simulated host, under which address.

    <platform version="4.1">
      <actor host="node-1" function="vsg_vm">
        <argument value="10.0.0.1"/>          the participant's IPv4 address
        <argument value="pingpong"/>          the program (absolute, relative, or on the path)
        <argument value="..."/>               its arguments
      </actor>
    </platform>

The program is started as `program SOCKET ARGUMENTS...`, SOCKET being the coordinator's
socket, as TANSIV does."""

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from ..errors import InputError

VM_FUNCTION = "vsg_vm"
HEADER = ("<?xml version='1.0'?>\n"
          '<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">\n'
          '<platform version="4.1">\n')


@dataclass
class Actor:
    host: str
    address: str
    program: str
    args: list = field(default_factory=list)
    line: int = 0  # in the deployment file

    def xml(self) -> str:
        argv = "".join(f"<argument value={quoteattr(str(a))}/>"
                       for a in (self.address, self.program, *self.args))
        return f'  <actor host={quoteattr(self.host)} function="{VM_FUNCTION}">{argv}</actor>\n'


@dataclass
class Deployment:
    path: Path
    actors: list


def write(path, actors) -> Path:
    """A deployment file of these actors, as parse() reads it back."""
    path = Path(path)
    path.write_text(HEADER + "".join(a.xml() for a in actors) + "</platform>\n")
    return path


def parse(path) -> Deployment:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the deployment: {e.strerror}", path)

    actors = []
    stack = []  # element names
    parser = expat.ParserCreate()
    current = None

    def start(name, attrs):
        nonlocal current
        line = parser.CurrentLineNumber
        if not stack and name != "platform":
            raise InputError(f"root element is <{name}>, expected <platform>", path, line)
        if name == "actor":
            if current is not None:
                raise InputError(f"<actor> inside the <actor> of line {current['line']}",
                                 path, line)
            func = attrs.get("function")
            if func != VM_FUNCTION:
                raise InputError(f"actor function '{func}' is not supported "
                                 f"(expected function=\"{VM_FUNCTION}\")", path, line)
            if not attrs.get("host"):
                raise InputError("actor without a host attribute", path, line)
            current = {"host": attrs["host"], "args": [], "line": line}
        elif name == "argument":
            if current is None:
                raise InputError("<argument> outside an <actor>", path, line)
            if "value" not in attrs:
                raise InputError("<argument> without a value attribute", path, line)
            current["args"].append(attrs["value"])
        elif name == "prop":
            pass  # properties are SimGrid's; tansiv does not use them
        elif name != "platform":
            raise InputError(f"unexpected element <{name}> in a deployment", path, line)
        stack.append(name)

    def end(name):
        nonlocal current
        stack.pop()
        if name == "actor":
            actors.append(_actor(current, path))
            current = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise InputError(f"not well-formed XML: {expat.errors.messages[e.code]}", path,
                         e.lineno)

    if not actors:
        raise InputError("no <actor function=\"vsg_vm\"> in the deployment", path)
    seen = {}
    for a in actors:
        if a.address in seen:
            raise InputError(f"address {a.address} is already used at line {seen[a.address]}",
                             path, a.line)
        seen[a.address] = a.line
    return Deployment(path, actors)


def _actor(raw, path) -> Actor:
    args = raw["args"]
    if len(args) < 2:
        raise InputError("an actor needs at least two arguments: its address and its program",
                         path, raw["line"])
    try:
        ip = ipaddress.IPv4Address(args[0])
    except ValueError:
        raise InputError(f"first argument '{args[0]}' is not an IPv4 address", path, raw["line"])
    # A participant's address names one participant: packets to it go to it alone.
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise InputError(f"address {ip} cannot be a participant's: give a unicast address",
                         path, raw["line"])
    address = str(ip)
    return Actor(host=raw["host"], address=address, program=args[1], args=args[2:],
                 line=raw["line"])


def check_hosts(deployment: Deployment, hosts) -> None:
    """Every actor's host must exist in the platform."""
    for a in deployment.actors:
        if a.host not in hosts:
            known = ", ".join(sorted(hosts)[:8]) + (", ..." if len(hosts) > 8 else "")
            raise InputError(f"unknown host '{a.host}' (the platform has: {known})",
                             deployment.path, a.line)
