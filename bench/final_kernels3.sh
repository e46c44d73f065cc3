#!/bin/bash
# The final device call of branch s6-kernels3: GPU tests of the new kernels, bench decode, and the suite's rows of
# the changed kernels (every 2:4 GEMV row, the activation-sparse GEMV at 50 %). Run from the tree's root; $OUT set.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SPARSEBENCH_ROOT=$PWD
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels_correctness.py -k "every_row_gemv_candidate" \
    tests/test_attention_flex.py 2>&1 | tail -3
timeout 260 python3 -m sparsebench bench decode --json $OUT/h200_decode.json 2>&1 | tee $OUT/decode.log | tail -12
ONLY="gemv_2_4/"
for m in smollm2-135m.q_proj smollm2-135m.k_proj smollm2-135m.up_proj smollm2-135m.down_proj llama-7b.q_proj \
         llama-7b.k_proj llama-7b.up_proj llama-7b.down_proj llama3-8b.k_proj llama3-8b.up_proj llama3-8b.down_proj; do
    ONLY="$ONLY,act_sparse_gemv/$m/t1/d0.5"
done
timeout 200 python3 -m sparsebench kernels run --profile h200 --only "$ONLY" --out $OUT/h200_part.json 2>$OUT/suite.log \
    | grep -v "^semi\|^csr\|^bsr"
