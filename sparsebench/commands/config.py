"""sparsebench validate / plan: check a config and show the jobs it expands to."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("validate", help="validate a config against the schema and discovered names")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.set_defaults(func=validate)
    p = sub.add_parser("plan", help="print the jobs a config expands to")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.set_defaults(func=plan)


def validate(args) -> int:
    from sparsebench.config import load_config

    load_config(args.config)
    print(f"{args.config}: valid")
    return 0


def plan(args) -> int:
    from sparsebench.config import load_config
    from sparsebench.plan import plan_jobs

    config = load_config(args.config)
    jobs = plan_jobs(config, only_available=True)
    for job in jobs:
        print(f"{job.run_id}  {job.label}")
    print(f"{len(jobs)} jobs")
    return 0
