rule report:
    # Claims are inputs too: editing a claim rebuilds the report (and nothing else).
    localrule: True  # cheap; on a cluster it runs on the submit host (see docs/slurm.md)
    input:
        summary=f"{RESULTS}/summary.csv",
        claims=sorted(str(p) for p in (registry.project_root() / "claims").glob("*.yaml")),
    output:
        update(f"{REPORTS}/index.html"),  # the last good report stays if a rebuild fails
    log:
        f"{RESULTS}/logs/report.log",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "sparsebench report --results {RESULTS} --out {REPORTS} > {log} 2>&1"
