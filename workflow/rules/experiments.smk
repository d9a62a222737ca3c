# One experiment = one job = one folder, results/runs/<id>/ (tansiv/experiments/runner.py).


def experiment_inputs(wildcards):
    inputs = {"core": R + "/build/core.stamp"}
    if vm_experiment(wildcards.id):
        inputs |= {"qemu": R + "/build/qemu.txt", "image": R + "/build/image.txt",
                   "router": R + "/build/router.txt"}
    if experiment_image(wildcards.id):
        inputs["user_image"] = R + f"/build/images/{experiment_image(wildcards.id)}.txt"
    return inputs


def experiment_threads(wildcards):
    """A core per VM (on each node, when the experiment spans several), at most --cores."""
    e = EXPERIMENTS[wildcards.id]
    if not vm_experiment(wildcards.id):
        return 1
    vms = e["participants"] + (e["mode"] == "netem")  # netem's bridge may be a router VM
    per_node = max(-(-vms // e["nodes"]), 1)
    try:
        return min(per_node, workflow.cores)
    except WorkflowError:  # a cluster executor: no local --cores to bound it
        return per_node


rule experiment:
    input:
        unpack(experiment_inputs),
    output:
        metrics=R + "/runs/{id}/metrics.csv",
        status=R + "/runs/{id}/status.json",
    log:
        R + "/logs/runs/{id}.log",
    params:
        spec=lambda wildcards: EXPERIMENTS[wildcards.id],
        workload=lambda wildcards: workloads.of(EXPERIMENTS[wildcards.id]).fingerprint(),
    threads: experiment_threads
    resources:
        mem_mb=lambda wildcards: 1024 + 1024 * EXPERIMENTS[wildcards.id]["participants"],
        runtime=lambda wildcards: int(EXPERIMENTS[wildcards.id]["timeout_s"] // 60) + 5,
        # Across several nodes (the SLURM profile's executor asks for them; locally, the
        # experiment fails saying it needs an allocation).
        nodes=lambda wildcards: EXPERIMENTS[wildcards.id]["nodes"],
        tasks=lambda wildcards: EXPERIMENTS[wildcards.id]["nodes"],  # else SLURM keeps 1 node
    script:
        "../scripts/run_experiment.py"
