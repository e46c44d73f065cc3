# sparsebench workflow: run every discovered method x target x task x seed x hardware
# in the config, then aggregate -> track (MLflow) -> report.
# Rules are thin wiring: each calls one `sparsebench` subcommand.
#
# `snakemake --lint` notes that remain, on purpose:
# - "Specify a conda environment or container for each rule": every rule runs the one
#   environment `make install` builds (.venv, pinned in the Makefile and pyproject.toml);
#   a per-rule conda directive would only restate it.
# - "Environment variable PATH/SPARSEBENCH_CACHE used but not asserted with envvars": common.smk
#   sets these for the jobs; it does not read them from the user, so there is nothing to assert.

# A config given on the command line (--configfile, `make run CONFIG=...`) is the whole
# config: Snakemake would otherwise deep-merge it into config/config.yaml.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/run.smk"
include: "workflow/rules/kernels.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/summary.csv",
        KERNEL_RESULTS,
        f"{RESULTS}/mlflow_runs.csv",
        f"{REPORTS}/index.html",


onsuccess:
    from sparsebench.finish import finish_message

    print(finish_message(RESULTS, REPORTS))
