#!/bin/bash
# The device call of branch s8-kernels (one call, ~7 min): the GPU check of every block-attention candidate (new:
# lookahead, warp-specialised loops) on the suite's LLaMA-7B head layout, then the suite's block_attention rows at
# 32k, the 8 Flex rows still from c5505cb, the 8k block_attention rows, and separate `bench decode` processes while
# time is left; each stage bounded by what is left of BUDGET_S. Run from the tree's root with $OUT set; everything
# lands in $OUT/kernels5.tgz, a short table is printed last.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SPARSEBENCH_ROOT=$PWD
BUDGET_S=${BUDGET_S:-420}
source "$(dirname "$0")/device_call.sh"  # now, limit, suite; $R
python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" \
    | tee $R/versions.txt
t=$(limit 100); echo "== tests: ${t}s"
(( t > 0 )) && timeout $t python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_block_attention.py \
    -k "32-32-4096" > $R/tests.log 2>&1
echo "== tests rc=$? at $(now)s"; tail -3 $R/tests.log
suite block_attention/llama-7b.attention/t32768 attn32k 130
F=flex_attention/llama-7b.attention
suite $F/t8192/d0.3,$F/t8192/d0.5,$F/t8192/d1,$F/t32768/ flex 150
suite block_attention/llama-7b.attention/t8192 attn8k 50
for n in 1 2 3; do
    t=$(limit 45); echo "== decode $n: ${t}s at $(now)s"
    (( t == 0 )) && break
    timeout $t python3 -m sparsebench bench decode --prefill '' --json $R/decode$n.json 2>$R/decode$n.log \
        > $R/decode$n.table
    echo "== decode $n rc=$? at $(now)s"
done
tar czf $OUT/kernels5.tgz -C $OUT r
echo "== done at $(now)s"
python3 - <<'PY'
import glob, json, os
R = os.environ["OUT"] + "/r"
for f in ("attn32k", "attn8k", "flex"):
    try:
        rows = json.load(open(f"{R}/{f}.json"))["rows"]
    except Exception as e:  # noqa: BLE001
        print(f, "no rows:", e)
        continue
    for r in rows:
        cfg = (r.get("info") or {}).get("config")
        print(f"{r['id']:50s} {r['status']:4s} {r.get('speedup') or 0:6.2f}x of {r.get('ideal_speedup') or 0:6.2f} = "
              f"{100 * (r.get('speedup') or 0) / (r.get('ideal_speedup') or 1):5.1f}%  sparse {r.get('sparse_ms') or 0:.3f} ms"
              f"  err {r.get('rel_error') or 0:.1e} {cfg if cfg else ''}")
for f in sorted(glob.glob(f"{R}/decode*.json")):
    d = json.load(open(f))
    print(os.path.basename(f), [(v.get("variant"), round(v.get("speedup", 0), 4), v.get("speedup_ci95"))
                               for v in d["rows"] if v["variant"] == "teal-0.5"])
PY
