"""The values some of a run's options take, declared once: `tansiv run`'s choices, the
configuration schema's enums (tansiv/experiments/config.py) and the sweep read them here. The
first of each is the default."""

TRANSPORTS = ("shm", "socket")   # how local participants speak to the hub
ON_STALL = ("fail", "remove")    # what a stalled participant does to the run
LAUNCHERS = ("local", "slurm")   # where participants run
