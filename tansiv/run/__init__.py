"""A run: participants and the SimGrid simulation kept in step. session owns it; the
coordinator drives the rounds through the hub (C); platform, deployment and routes are its
inputs; participants, rundir and record what it leaves."""
