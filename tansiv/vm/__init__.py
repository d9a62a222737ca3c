"""Virtual machines: QEMU with tantap and guest images (build), their command lines (qemu),
the tansiv-vm launcher, and the netem baseline."""
