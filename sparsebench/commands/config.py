"""sparsebench validate / plan: check a config and show the jobs it expands to."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("validate", help="validate a config against the schema and discovered names")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.set_defaults(func=validate)
    p = sub.add_parser("plan", help="print the jobs a config expands to",
                       description="Print the jobs a config expands to. With --paths, print only their result "
                                   "files: Snakemake targets, e.g. to run one part of the matrix: "
                                   "snakemake --cores all $(sparsebench plan --experiment sparse-attention --paths)")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.add_argument("--experiment", action="append", default=None, metavar="NAME",
                   help="only this experiment of the config (repeatable)")
    p.add_argument("--paths", action="store_true", help="print each job's result.json path, one per line")
    p.set_defaults(func=plan)


def validate(args) -> int:
    from sparsebench.config import load_config

    load_config(args.config)
    print(f"{args.config}: valid")
    return 0


def plan(args) -> int:
    from sparsebench.config import load_config
    from sparsebench.plan import plan_jobs

    from sparsebench.errors import ConfigError

    config = load_config(args.config)
    if args.experiment:
        unknown = [e for e in args.experiment if e not in config["experiments"]]
        if unknown:
            raise ConfigError(f"--experiment={unknown[0]!r} is not an experiment of {args.config}; allowed: "
                              f"{', '.join(config['experiments'])}")
        config = {**config, "experiments": {e: config["experiments"][e] for e in args.experiment}}
    jobs = plan_jobs(config, only_available=True)
    for job in jobs:
        print(job.result_path(config["results_dir"]) if args.paths else f"{job.run_id}  {job.label}")
    if not args.paths:
        print(f"{len(jobs)} jobs")
    return 0
