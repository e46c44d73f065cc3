#!/bin/bash
# The device call of branch s7-kernels4 (one call, ~8 min): GPU checks of the new candidates, then the suite's rows of
# every kernel whose tuning or code changed, most important first, each stage bounded by what is left of BUDGET_S,
# and bench decode with interleaved rounds. Run from the tree's root with $OUT set; everything lands in
# $OUT/kernels4.tgz, a short table is printed last.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SPARSEBENCH_ROOT=$PWD
BUDGET_S=${BUDGET_S:-480}
source "$(dirname "$0")/device_call.sh"  # now, limit, suite; $R
python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" \
    | tee $R/versions.txt
t=$(limit 75); echo "== tests: ${t}s"
(( t > 0 )) && timeout $t python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels_correctness.py \
    -k "every_row_gemv_candidate or triton_gemvs_match_dense" 2>&1 | tail -3
suite gemv_2_4/ gemv24 80
t=$(limit 120); echo "== decode: ${t}s at $(now)s"
(( t > 0 )) && timeout $t python3 -m sparsebench bench decode --prefill '' --json $R/h200_decode.json \
    2>$R/decode.log > $R/decode.table
echo "== decode rc=$? at $(now)s"
suite block_attention/llama-7b.attention/t32768 attn32k 130
suite act_sparse_gemv/ act 200
suite block_attention/llama-7b.attention/t8192,block_attention/smollm2 attn8k 90
suite act_sparse_gemv_compact/ compact 120
tar czf $OUT/kernels4.tgz -C $OUT r
echo "== done at $(now)s"
cat $R/decode.table 2>/dev/null
grep -h "llama" $R/gemv24.table $R/attn32k.table 2>/dev/null
grep -h "llama.*d0.5 " $R/act.table 2>/dev/null
