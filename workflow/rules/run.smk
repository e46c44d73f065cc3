rule prepare_task:
    # One-time per-machine work of a task (e.g. dequantise and cache model weights).
    input:
        task=lambda w: str(registry.task(w.task).file),
    output:
        f"{RESULTS}/prepared/{{task}}.json",
    log:
        f"{RESULTS}/logs/prepare/{{task}}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        # the task as configured (e.g. a CIFAR root), not its defaults
        task=lambda w: json.dumps(config["tasks"].get(w.task) or {}, sort_keys=True),
    shell:
        "sparsebench prepare --task {wildcards.task} --params {params.task:q} --out {output} > {log} 2>&1"


rule run_job:
    # One job = one result.json; inputs include the method and task files, so
    # editing a method reruns only that method's jobs.
    input:
        method=lambda w: job_of(w).method_file,
        task=lambda w: job_of(w).task_file,
        # ancient(): re-preparing a task (a one-time cache) never invalidates finished results
        prepared=lambda w: ancient(f"{RESULTS}/prepared/{job_of(w).task}.json"),
    output:
        f"{RESULTS}/runs/{{task}}/{{method}}/{{run_id}}/result.json",
    log:
        f"{RESULTS}/logs/run/{{task}}/{{method}}/{{run_id}}.log",
    threads: lambda w: run_resources(w)["threads"]
    resources:
        # declared by the task (Task.resources); gpu=1 for a cuda hardware profile
        mem_mb=lambda w: run_resources(w)["mem_mb"],
        runtime=lambda w: run_resources(w)["runtime"],
        gpu=lambda w: run_resources(w)["gpu"],
    params:
        spec=lambda w: job_of(w).spec_json(),
    # What the terminal shows for the job (the shell command, with its JSON spec, is not printed).
    # Only wildcards here: a new param would change every job's recorded params and rerun them all.
    message:
        "{wildcards.task} {wildcards.method} -> {output} (log: {log}; asks mem_mb={resources.mem_mb}, runtime={resources.runtime}, gpu={resources.gpu})"
    shell:
        "sparsebench run --spec {params.spec:q} --out {output} > {log} 2>&1"
