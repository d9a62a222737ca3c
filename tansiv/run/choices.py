"""The values some of a run's options take, declared once: `tansiv run`'s choices, the
configuration schema's enums (tansiv/experiments/config.py) and the sweep read them here. The
first of each is the default."""

TRANSPORTS = ("shm", "socket")   # how local participants speak to the hub
ON_STALL = ("fail", "remove")    # what a stalled participant does to the run
LAUNCHERS = ("local", "slurm")   # where participants run
NETWORKS = ("simgrid", "ns3")    # SimGrid's flow model, or ns-3's packets (tansiv/run/ns3.py)
IDLE_HORIZONS = ("on", "off")    # idle participants sit out rounds (csrc/hub/rounds.c)


def _queues() -> tuple:
    """ns-3's queue disciplines, as csrc/ns3/tansiv-ns3.h declares them (DropTail first);
    none where the model is not built (no ns-3 on the machine: tansiv/run/ns3.py says so)."""
    import cffi
    from .. import paths
    from . import cheader
    if not (paths.includedir() / "tansiv" / "tansiv-ns3.h").exists():
        return ()
    ffi = cffi.FFI()
    cheader.load(ffi, "tansiv-ns3.h")
    elements = ffi.typeof("enum tsv_ns3_queue").relements
    return tuple(name[len("TSV_NS3_"):].lower()
                 for name, _ in sorted(elements.items(), key=lambda kv: kv[1]))


QUEUES = _queues()               # a link's queue under --network ns3
DEFAULT_QUEUE_SIZE = "100p"      # each link direction's under --network ns3 (TANSIV's ns-3)
