rule aggregate:
    input:
        results=result_files(),
        kernels=KERNEL_RESULTS,  # latency columns come from the kernel measurements
    output:
        # update(): Snakemake keeps the last good summary while this runs and restores it if this fails
        csv=update(f"{RESULTS}/summary.csv"),
        parquet=update(f"{RESULTS}/summary.parquet"),
    log:
        f"{RESULTS}/logs/aggregate.log",
    localrule: True  # cheap; on a cluster it runs on the submit host (see docs/slurm.md)
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        results=RESULTS,
    shell:
        "sparsebench aggregate --results {params.results} --out {output.csv} > {log} 2>&1"
