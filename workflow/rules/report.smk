rule report:
    localrule: True  # cheap; on a cluster it runs on the submit host (see docs/slurm.md)
    input:
        f"{RESULTS}/summary.csv",
    output:
        f"{REPORTS}/index.html",
    log:
        f"{RESULTS}/logs/report.log",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "sparsebench report --results {RESULTS} --out {REPORTS} > {log} 2>&1"
