"""tansiv: real programs and virtual machines over a SimGrid-simulated network."""

__version__ = "0.1.0"
