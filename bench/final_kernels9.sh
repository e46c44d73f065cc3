#!/bin/bash
# Device call(s) after the scratch engines and the wider cuSPARSELt search (STAGES picks what runs, default all):
# gpu -- the GPU tests of every TUNE_ACT config and every cuSPARSELt candidate; tuned -- the suite's 12
# semi_structured_tuned rows (or those of $TUNED); act -- the suite's act_sparse_gemv rows (TUNE_ACT changed); ceiling -- python -m
# sparsebench.kernels.gemv_ceiling; decode -- bench decode without prefill. Everything lands in $OUT/kernels9.tgz.
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD SPARSEBENCH_ROOT=$PWD
BUDGET_S=${BUDGET_S:-540}
PACK_S=10
STAGES=${STAGES:-gpu tuned act ceiling decode}
source "$(dirname "$0")/device_call.sh"  # now, limit, suite; $R
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has gpu; then
    t=$(limit 120); echo "== gpu tests: ${t}s"
    (( t > 0 )) && timeout $t python3 -m pytest -q -m gpu tests/test_kernels_correctness.py \
        -k "cusparselt or test_triton_gemvs_match_dense_on_cuda" -p no:cacheprovider > $R/gputest.log 2>&1
    echo "== gpu tests rc=$? at $(now)s: $(tail -1 $R/gputest.log)"
fi
has tuned && suite "${TUNED:-semi_structured_tuned/}" tuned 240
has act && suite act_sparse_gemv/ act 330
if has ceiling; then
    t=$(limit 120); echo "== ceiling: ${t}s at $(now)s"
    (( t > 0 )) && timeout $t python3 -m sparsebench.kernels.gemv_ceiling --out $R/ceiling.json --rounds 30 \
        > $R/ceiling.table 2>$R/ceiling.log
    echo "== ceiling rc=$? at $(now)s"
fi
if has decode; then
    t=$(limit 90); echo "== decode: ${t}s at $(now)s"
    (( t > 0 )) && timeout $t python3 -m sparsebench bench decode --prefill '' --json $R/decode.json 2>$R/decode.log \
        > $R/decode.table
    echo "== decode rc=$? at $(now)s"
fi
tar czf $OUT/kernels9.tgz -C $OUT r
grep -E "passed|failed|Error" $R/gputest.log 2>/dev/null | tail -3
grep -v "^kernel" $R/tuned.table 2>/dev/null
grep "llama" $R/act.table 2>/dev/null | grep "d0.5 "
cat $R/ceiling.table $R/decode.table 2>/dev/null
