"""The long-context table (method x task x length x phase): accuracy with 95 % intervals and the paired
difference to dense attention on the same samples, from RULER-style sparse-attention jobs.

    PYTHONPATH=$PWD python3 bench/ruler_table.py DIR [DIR ...]

Reads every ``*.json`` result (``samples.accuracy_{phase}``) and, for a job without a result (stopped at a
deadline), the per-sample lines of its ``*.log`` (``[method ...] phase <id>: score ...``), marked partial.
Dense: the full-attention job of the same task (its prefill phase; both of its phases are exact attention).
Intervals: sparsebench.stats (bootstrap over samples; paired bootstrap of the difference on common ids).
"""
import glob
import json
import os
import re
import sys

import numpy as np

from sparsebench.stats import Side, bootstrap_ci, bootstrap_contrast

LINE = re.compile(r"^\[(?P<method>\S+) [^\]]*\] (?P<phase>prefill|decode) (?P<id>\S+): (?P<score>[0-9.]+) ")


def load(dirs):
    """{(task, method, phase): (ids, values, source)}"""
    rows = {}
    for d in dirs:
        for f in sorted(glob.glob(os.path.join(d, "*.json"))):
            r = json.load(open(f))
            for key, s in (r.get("samples") or {}).items():
                if key.startswith("accuracy_"):
                    rows[(r["task"], r["method"], key.split("_", 1)[1])] = (s["ids"], s["values"], "result")
        for f in sorted(glob.glob(os.path.join(d, "*.log"))):
            if os.path.exists(f[:-4] + ".json"):
                continue
            task = None
            found = {}
            for line in open(f, errors="replace"):
                m = LINE.match(line)
                if m:
                    found.setdefault((m["method"], m["phase"]), ({}, []))[0][m["id"]] = float(m["score"])
            name = os.path.basename(f)[:-4]  # a job list's name holding its length, e.g. ruler-4k-quest
            lengths = re.findall(r"(?<![0-9a-z])([0-9]+k)(?![a-z])", name)
            if len(lengths) != 1:
                sys.exit(f"{f}: the log's name must hold its length once (e.g. ruler-4k-quest.log), found {lengths}")
            length = lengths[0]
            task = f"lm-smollm2-ruler-niah-single-{length}"
            for (method, phase), (vals, _) in found.items():
                rows[(task, method, phase)] = (list(vals), list(vals.values()), "log (partial)")
    return rows


def fmt(x):
    return f"{x:.2f}"


def main(dirs):
    rows = load(dirs)
    print("| task | method | phase | n | accuracy [95 %] | dense on the same samples | difference to dense [95 %, paired] | source |")
    print("|---|---|---|---:|---|---|---|---|")
    for (task, method, phase), (ids, vals, src) in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "full-attention", kv[0][1], kv[0][2])):
        ci = bootstrap_ci(vals, "mean", "sample")
        dense = rows.get((task, "full-attention", "prefill"))
        cell_d, cell_diff = "-", "-"
        if dense is not None and method != "full-attention":
            dmap = dict(zip(dense[0], dense[1]))
            common = [i for i in ids if i in dmap]
            a = np.array([v for i, v in zip(ids, vals) if i in dmap])
            b = np.array([dmap[i] for i in common])
            c = bootstrap_contrast(Side(a[None, :], "mean", "sample"), Side(b[None, :], "mean", "sample"), paired=True)
            cell_d = f"{fmt(b.mean())} (n={len(b)})"
            cell_diff = f"{c.diff.estimate:+.2f} [{c.diff.lo:+.2f}, {c.diff.hi:+.2f}]"
        print(f"| {task.replace('lm-smollm2-ruler-', '')} | {method} | {phase} | {len(vals)} | {fmt(ci.estimate)} "
              f"[{fmt(ci.lo)}, {fmt(ci.hi)}] | {cell_d} | {cell_diff} | {src} |")


if __name__ == "__main__":
    main(sys.argv[1:])
