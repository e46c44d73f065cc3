rule report:
    input:
        summary=f"{RESULTS}/summary.csv",
        # claims are inputs too: editing a claim rebuilds the report (and nothing else)
        claims=sorted(
            str(p) for p in (registry.project_root() / "claims").glob("*.yaml")
        ),
    output:
        update(f"{REPORTS}/index.html"),  # the last good report stays if a rebuild fails
    log:
        f"{RESULTS}/logs/report.log",
    localrule: True  # cheap; on a cluster it runs on the submit host (see docs/slurm.md)
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        results=RESULTS,
        reports=REPORTS,
    shell:
        "sparsebench report --results {params.results} --out {params.reports} > {log} 2>&1"
