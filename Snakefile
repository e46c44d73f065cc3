# sparsebench workflow: run every discovered method x target x task x seed x hardware
# in the config, then aggregate -> track (MLflow) -> report.
# Rules are thin wiring: each calls one `sparsebench` subcommand.

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
    input:
        f"{RESULTS}/summary.csv",
        KERNEL_RESULTS,
        f"{RESULTS}/mlflow_runs.csv",
        f"{REPORTS}/index.html",
    default_target: True


onsuccess:
    from sparsebench.finish import finish_message

    print(finish_message(RESULTS, REPORTS))
