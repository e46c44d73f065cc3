"""Dense SmolLM2 greedy accuracy on the RULER-style kinds at one length (docs/attention.md, on a GPU).

    PYTHONPATH=$PWD python3 bench/ruler_dense.py 8192 50 out.json niah-single,niah-multikey

Builds each ``lm-smollm2-ruler-<kind>-<len>`` task with ``sequences`` samples, loads the model once in
float16 on CUDA, answers every prompt with ``greedy_answer`` (no sparse phase) and writes the per-sample
scores, mean accuracy, chance and the Wilson interval of fully correct answers after every sample, so a
deadline leaves the samples done. Several processes (one per kind group) share one GPU.
"""
import json, sys, time
import torch
from sparsebench import registry
from sparsebench.attention.generate import greedy_answer
from sparsebench.attention.ruler import string_match_all
from sparsebench.stats import wilson_interval

length, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows, model, tok = [], None, None
for kind in sys.argv[4].split(","):
    name = f"lm-smollm2-ruler-{kind}-{length // 1024}k"
    t0 = time.perf_counter()
    task = registry.task(name).cls.build({"sequences": n}, name)
    if model is None:
        model = task.load_model(torch.float16).to("cuda").eval()
        tok = task._tokenizer
    task._tokenizer = tok
    row = {"task": name, "kind": kind, "seq_len": length, "dtype": "float16", "values": [], "chance": []}
    rows.append(row)
    with torch.no_grad():
        for s in task.ruler_samples():
            text = greedy_answer(model, None, torch.tensor([s.ids]), None, s.answers, tok, task.max_new_tokens())
            row["values"].append(round(string_match_all(text, s.answers), 6))
            row["chance"].append(s.chance)
            v = row["values"]
            full = sum(1 for x in v if x == 1.0)
            row.update(n=len(v), accuracy=sum(v) / len(v), chance_mean=sum(row["chance"]) / len(v), full_credit=full,
                       wilson_full_credit=list(wilson_interval(full, len(v))), s=time.perf_counter() - t0)
            json.dump(rows, open(out, "w"))
    print(f"{name}: acc {row['accuracy']:.3f} full {row['full_credit']}/{row['n']} ({row['s']:.0f} s)", flush=True)
