"""The network model the coordinator drives: frames go in at their send dates, fates come out.

One small interface, whatever simulates the network (SimGrid's flow model, platform.py):
- send(src_host, dst_host, size, at_ns, id, flow): a frame of size bytes, sent at at_ns
  (never before a date the model was advanced to), known as id, of a flow (a number, for
  queues that tell flows apart; 0: the pair of hosts is the flow);
- advance(to_ns) -> [Fate]: runs the model to to_ns; the frames delivered or dropped on the
  way, in order of date (then of id);
- next_event_ns(): the earliest date anything can come out of the model (None: nothing in
  flight), so that rounds end where a delivery may happen;
- in_flight(), cancel_all() -> ids: what is still inside, and ending it.
Frames are ids: payloads stay in the hub, and the coordinator keeps what it knows of each
(tansiv/run/coordinator.py: InFlight)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Fate:
    """What became of a frame: delivered at time_ns (dropped None), or dropped at time_ns
    (why: e.g. "queue full", "loss"; where: the link and its direction)."""
    id: int
    time_ns: int
    dropped: str = None
    where: str = None
