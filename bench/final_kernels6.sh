#!/bin/bash
# The second device call of branch s8-kernels (~3 min): in .kern/s8-exp (commit 2e44c8f: lookahead and warp-specialised
# candidates, TMA fixed) every candidate timed at 32k by bench/sweep_attention.py; in this tree (the kernel of
# 9b2153f) the suite's LLaMA-7B block_attention rows at 32k and 8k, then one more `bench decode` process if time is
# left. Run from this tree's root with $OUT set; everything lands in $OUT/kernels6.tgz, a short table last.
export PYTHONUNBUFFERED=1
BUDGET_S=${BUDGET_S:-190}
PACK_S=10
source "$(dirname "$0")/device_call.sh"  # now, limit, suite; $R
HERE=$PWD
t=$(limit 70); echo "== sweep: ${t}s"
(( t > 0 )) && (cd ../s8-exp && PYTHONPATH=$PWD SPARSEBENCH_ROOT=$PWD timeout $t python3 bench/sweep_attention.py \
    --out $R/sweep.json > $R/sweep.log 2>$R/sweep.err)
echo "== sweep rc=$? at $(now)s"
export PYTHONPATH=$HERE SPARSEBENCH_ROOT=$HERE
for stage in "t32768 attn32k 70" "t8192 attn8k 30"; do
    set -- $stage
    t=$(limit $3); echo "== $2: ${t}s at $(now)s"
    (( t == 0 )) && continue
    timeout $t python3 -m sparsebench kernels run --profile h200 --only block_attention/llama-7b.attention/$1 \
        --out $R/$2.json 2>$R/$2.log > $R/$2.table
    echo "== $2 rc=$? at $(now)s"
done
t=$(limit 60); echo "== decode: ${t}s at $(now)s"
(( t > 0 )) && timeout $t python3 -m sparsebench bench decode --prefill '' --json $R/decode4.json 2>$R/decode4.log \
    > $R/decode4.table
echo "== decode rc=$? at $(now)s"
tar czf $OUT/kernels6.tgz -C $OUT r
grep -v "^\s*$" $R/sweep.log | cut -c1-110
cat $R/attn32k.table $R/attn8k.table $R/decode4.table 2>/dev/null | grep -v "^kernel\|^variant"
