# Sourced by the bench/final_kernels*.sh device calls: a time budget shared by the call's stages.
# Needs $OUT; set BUDGET_S (seconds for the whole call) and optionally PACK_S (kept for packing up) first.
BUDGET_S=${BUDGET_S:-420}
PACK_S=${PACK_S:-15}
T0=$(date +%s)
R=$OUT/r
mkdir -p $R
now() { echo $(( $(date +%s) - T0 )); }
limit() {  # seconds a stage may take: min(its cap, what is left less PACK_S); 0 = skip it
    local t=$(( BUDGET_S - $(now) - PACK_S ))
    (( t > $1 )) && t=$1
    (( t < 20 )) && t=0
    echo $t
}
suite() {  # suite ONLY NAME CAP: the kernel suite's rows matching ONLY into $R/NAME.json
    local t=$(limit $3)
    echo "== $2: ${t}s at $(now)s"
    (( t == 0 )) && return
    timeout $t python3 -m sparsebench kernels run --profile h200 --only "$1" --out $R/$2.json 2>$R/$2.log > $R/$2.table
    echo "== $2 rc=$? at $(now)s: $(grep -c '"id"' $R/$2.json 2>/dev/null) rows"
}
