"""sparsebench list: every discovered method, task and hardware profile."""

from __future__ import annotations

import json


def register(sub):
    p = sub.add_parser("list", help="list discovered methods, tasks and hardware profiles")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsebench import registry
    from sparsebench.hardware import profiles

    methods = [e.cls.describe() | {"file": str(e.file)} for e in registry.methods().values()]
    tasks = [e.cls.describe() for e in registry.tasks().values()]
    hw = [{"name": p.name, "device": p.device, "dtype": p.dtype, "backends": list(p.backends),
           "available": p.available()[0]} for p in profiles().values()]
    if args.json:
        print(json.dumps({"methods": methods, "tasks": tasks, "hardware": hw}, indent=2))
        return 0
    print(f"Methods ({len(methods)}):")
    for fam in sorted({m["family"] for m in methods}):
        print(f"  {fam}:")
        for m in sorted((m for m in methods if m["family"] == fam), key=lambda m: m["name"]):
            print(f"    {m['name']:<16} patterns: {', '.join(m['patterns']):<28} {m['paper']}")
    print(f"Tasks ({len(tasks)}):")
    for t in tasks:
        metrics = "; ".join(f"{k} ({v})" for k, v in t["metrics"].items())
        print(f"    {t['name']:<16} families: {', '.join(t['families']):<28} metrics: {metrics}")
    print(f"Hardware profiles ({len(hw)}):")
    for h in hw:
        mark = "available here" if h["available"] else "not on this machine"
        print(f"    {h['name']:<16} {h['device']}/{h['dtype']}, backends: {', '.join(h['backends'])} ({mark})")
    return 0
