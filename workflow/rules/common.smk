# Validate the config (schema + discovered names) before any job starts, and
# expand it into jobs. All logic lives in the sparsebench package.
from snakemake.utils import validate

from sparsebench import registry
from sparsebench.config import validate_config
from sparsebench.plan import plan_jobs

validate(config, "../schemas/config.schema.yaml")
config = validate_config(config, source="config")
RESULTS = config["results_dir"]
REPORTS = config["reports_dir"]
JOBS = {job.run_id: job for job in plan_jobs(config, only_available=True)}
TASKS = sorted({job.task for job in JOBS.values()})


def job_of(wildcards):
    return JOBS[wildcards.run_id]


def result_files():
    return [str(job.result_path(RESULTS)) for job in JOBS.values()]
