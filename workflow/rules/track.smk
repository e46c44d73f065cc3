rule track:
    input:
        summary=f"{RESULTS}/summary.csv",
        report=f"{REPORTS}/index.html",
    output:
        update(f"{RESULTS}/mlflow_runs.csv"),
    log:
        f"{RESULTS}/logs/track.log",
    # The only job that writes the MLflow store (SQLite has one writer).
    # After the report, so each task's summary run carries the report and figures as artifacts.
    localrule: True  # cheap; on a cluster it runs on the submit host (see docs/slurm.md)
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        results=RESULTS,
        reports=REPORTS,
        uri=lambda w: (
            f"--tracking-uri {config['tracking_uri']}"
            if config.get("tracking_uri")
            else ""
        ),
    shell:
        "sparsebench track --results {params.results} --reports {params.reports} {params.uri} --out {output} > {log} 2>&1"
