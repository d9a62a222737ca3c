"""The pipeline's experiments: sweeps of the configuration expanded into experiments (sweep,
config), each planned by its workload (workloads/) on a generated topology, run in a mode
(modes, runner), and measured (metrics)."""
