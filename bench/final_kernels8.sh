#!/bin/bash
# One device call (~9 min): the GPU tests of cuSPARSELt's candidates and of every TUNE_ACT config (the scratch
# engines included); `python -m sparsebench.kernels.gemv_ceiling` (every one-token LLaMA shape: our act-sparse and
# 2:4 GEMVs, tuned as the suite tunes them, beside the best dense GEMV on the bytes each must read); the suite's
# semi_structured_tuned rows (2048 tokens first). Run from the tree's root with $OUT set; everything lands in
# $OUT/kernels8.tgz, a short table last.
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD SPARSEBENCH_ROOT=$PWD
BUDGET_S=${BUDGET_S:-540}
PACK_S=10
source "$(dirname "$0")/device_call.sh"  # now, limit, suite; $R
t=$(limit 150); echo "== gpu tests: ${t}s"
(( t > 0 )) && timeout $t python3 -m pytest -q -m gpu tests/test_kernels_correctness.py -k "cusparselt or test_triton_gemvs_match_dense_on_cuda" \
    -p no:cacheprovider > $R/gputest.log 2>&1
echo "== gpu tests rc=$? at $(now)s: $(tail -1 $R/gputest.log)"
t=$(limit 200); echo "== ceiling: ${t}s at $(now)s"
(( t > 0 )) && timeout $t python3 -m sparsebench.kernels.gemv_ceiling --out $R/ceiling.json --rounds 30 \
    > $R/ceiling.table 2>$R/ceiling.log
echo "== ceiling rc=$? at $(now)s"
T=semi_structured_tuned
suite "$T/llama-7b.up_proj/t2048,$T/llama-7b.down_proj/t2048,$T/llama3-8b.up_proj/t2048,$T/llama3-8b.down_proj/t2048" tuned2048 150
suite "$T/llama-7b.up_proj/t4096,$T/llama-7b.down_proj/t4096,$T/llama3-8b.up_proj/t4096,$T/llama3-8b.down_proj/t4096,$T/llama-7b.up_proj/t8192,$T/llama-7b.down_proj/t8192,$T/llama3-8b.up_proj/t8192,$T/llama3-8b.down_proj/t8192" tuned_rest 300
tar czf $OUT/kernels8.tgz -C $OUT r
grep -E "passed|failed|Error" $R/gputest.log | tail -5
cat $R/tuned2048.table $R/tuned_rest.table 2>/dev/null | grep -v "^kernel"
cat $R/ceiling.table; tail -3 $R/ceiling.log
python3 - <<'PY'
import json, os
d = json.load(open(os.environ["OUT"] + "/r/ceiling.json"))
for s in d["shapes"]:
    print(s["shape"], "act:", s["configs"]["act_sparse_gemv"], "2:4:", s["configs"]["gemv_2_4"])
PY
