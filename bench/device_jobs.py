"""Run `sparsebench run` jobs side by side in a priority order until a deadline (a GPU call's time box).

    PYTHONPATH=$PWD python3 bench/device_jobs.py jobs.json OUTDIR --workers 9 --deadline-s 270

``jobs.json``: a list of {"name": ..., "spec": {...}} (specs as `sparsebench plan` writes them). Each job is
one `python3 -m sparsebench run --spec ... --out OUTDIR/<name>.json` process (its log in OUTDIR/<name>.log),
started in list order as workers free up. At the deadline the jobs still running are stopped (their logs keep
the per-sample lines written so far) and a summary line per job is printed: done (s) / stopped / not started.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("jobs")
ap.add_argument("outdir")
ap.add_argument("--workers", type=int, default=8)
ap.add_argument("--deadline-s", type=float, default=270.0)
a = ap.parse_args()
jobs = json.load(open(a.jobs))
os.makedirs(a.outdir, exist_ok=True)
t0 = time.time()
queue, running, state = list(jobs), {}, {}
while (queue or running) and time.time() - t0 < a.deadline_s:
    while queue and len(running) < a.workers:
        j = queue.pop(0)
        log = open(os.path.join(a.outdir, j["name"] + ".log"), "w")
        cmd = [sys.executable, "-m", "sparsebench", "run", "--spec", json.dumps(j["spec"]),
               "--out", os.path.join(a.outdir, j["name"] + ".json")]
        running[j["name"]] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
                              time.time())
    for name, (p, ts) in list(running.items()):
        if p.poll() is not None:
            state[name] = f"rc {p.returncode} in {time.time() - ts:.0f} s"
            del running[name]
    time.sleep(1)
for name, (p, ts) in running.items():
    os.killpg(p.pid, signal.SIGTERM)  # the job's own process group, started above
    state[name] = f"stopped after {time.time() - ts:.0f} s"
for j in queue:
    state[j["name"]] = "not started"
for j in jobs:
    print(f"{j['name']}: {state.get(j['name'])}")
