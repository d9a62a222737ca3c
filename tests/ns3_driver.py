"""Drives tansiv's ns-3 model (tansiv/run/ns3.py) with no participant, for tests/test_ns3.py:
frames sent at given dates, their fates printed. A program of its own because SimGrid's and
ns-3's engines are one per process.

    python ns3_driver.py SPEC.json

SPEC: {"platform": path, "hosts": [names], "options": {queue, queue_size, loss, seed},
"sends": [[src, dst, size, time_ns], ...] (in time order), "until_ns": ...}. The model is
stepped as the coordinator steps it: to the next send or to the date it gives as its next
possible delivery, whichever comes first. Prints one JSON object: {"fates": [[id, time_ns,
dropped, where], ...] (ids: the sends' indices), "steps": [[bound_ns, [delivery dates]], ...]
(the bound given before each step, and what the step delivered)}."""

import json
import sys

from tansiv.run.ns3 import Ns3Network
from tansiv.run.platform import Network
from tansiv.run.routes import Route


def main(spec_path: str) -> None:
    spec = json.load(open(spec_path))
    net = Network(spec["platform"])
    hosts = spec["hosts"]
    routes = []
    for a in hosts:
        for b in hosts:
            if a != b:
                lat, bw, links, hops = net.route(a, b)
                routes.append(Route(a, b, a, b, lat, bw, links, hops))
    model = Ns3Network(net, routes, **spec.get("options", {}))
    sends, until = spec["sends"], spec["until_ns"]
    fates, steps, k = [], [], 0
    while True:
        bound = model.next_event_ns()
        dates = [d for d in (bound, sends[k][3] if k < len(sends) else None) if d is not None]
        if not dates or min(dates) > until:
            break
        step = model.advance(min(dates))
        fates += step
        steps.append([bound, [f.time_ns for f in step if not f.dropped]])
        while k < len(sends) and sends[k][3] == min(dates):
            src, dst, size, at = sends[k]
            model.send(src, dst, size, at, k)
            k += 1
    fates += model.advance(until)
    print(json.dumps({"fates": [[f.id, f.time_ns, f.dropped, f.where] for f in fates],
                      "steps": steps, "in_flight": model.in_flight()}))


if __name__ == "__main__":
    main(sys.argv[1])
