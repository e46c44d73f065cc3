#!/bin/bash
# One device call (~9 min): cuSPARSELt's own search in the 2:4 prefill rows and the GEMV ceilings. Stages: the
# cuSPARSELt GPU test; the suite's semi_structured_tuned rows at 2048 tokens; `python -m
# sparsebench.kernels.gemv_ceiling` (every one-token LLaMA shape: our act-sparse and 2:4 GEMVs beside the best dense
# GEMV on the bytes each must read); the tuned rows at 4096 / 8192 if time is left. Run from the tree's root with
# $OUT set; everything lands in $OUT/kernels7.tgz, a short table last.
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD SPARSEBENCH_ROOT=$PWD
BUDGET_S=${BUDGET_S:-540}
PACK_S=10
source "$(dirname "$0")/device_call.sh"  # now, limit, suite; $R
t=$(limit 60); echo "== gpu test: ${t}s"
(( t > 0 )) && timeout $t python3 -m pytest -q -m gpu tests/test_kernels_correctness.py -k cusparselt -p no:cacheprovider \
    > $R/gputest.log 2>&1
echo "== gpu test rc=$? at $(now)s: $(tail -1 $R/gputest.log)"
T=semi_structured_tuned
suite "$T/llama-7b.up_proj/t2048,$T/llama-7b.down_proj/t2048,$T/llama3-8b.up_proj/t2048,$T/llama3-8b.down_proj/t2048" tuned2048 170
t=$(limit 200); echo "== ceiling: ${t}s at $(now)s"
(( t > 0 )) && timeout $t python3 -m sparsebench.kernels.gemv_ceiling --out $R/ceiling.json --rounds 30 \
    > $R/ceiling.table 2>$R/ceiling.log
echo "== ceiling rc=$? at $(now)s"
suite "$T/llama-7b.up_proj/t4096,$T/llama-7b.down_proj/t4096,$T/llama3-8b.up_proj/t4096,$T/llama3-8b.down_proj/t4096,$T/llama-7b.up_proj/t8192,$T/llama-7b.down_proj/t8192,$T/llama3-8b.up_proj/t8192,$T/llama3-8b.down_proj/t8192" tuned_rest 300
tar czf $OUT/kernels7.tgz -C $OUT r
tail -3 $R/gputest.log
cat $R/tuned2048.table $R/tuned_rest.table 2>/dev/null | grep -v "^kernel"
cat $R/ceiling.table; tail -3 $R/ceiling.log
