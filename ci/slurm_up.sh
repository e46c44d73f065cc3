#!/usr/bin/env bash
# Start a throwaway single-node SLURM on 127.0.0.1 (munged + slurmctld + slurmd),
# for tests/test_slurm.py and CI. Needs root (slurmd launches jobs) and no systemd.
#
#   ci/slurm_up.sh [--install] STATE_DIR     # prints nothing on success; logs in STATE_DIR
#   ci/slurm_down.sh STATE_DIR               # stops the daemons, removes the config
#
# --install: apt-get install Debian's slurm-wlm and munge first if they are missing.
#
# Everything lives in STATE_DIR (munge key and socket, state, spool, logs,
# jobcomp.log), except slurm.conf itself: it is written to the client tools'
# compiled-in default path ($SLURM_CONF_PATH, /etc/slurm/slurm.conf), because
# snakemake-executor-plugin-slurm-jobstep strips every SLURM_* variable (SLURM_CONF
# included) from the environment of the `srun` it runs inside each job, so a
# config anywhere else is invisible to that srun. An existing slurm.conf that
# this script did not write is never overwritten.
#
# No accounting database: AccountingStorageType=none, so `sacct` does not work;
# snakemake must use `--slurm-status-command squeue` (MinJobAge keeps finished
# jobs visible to squeue for an hour) and every finished job is recorded in
# STATE_DIR/jobcomp.log (JobCompType=jobcomp/filetxt), which the test reads.
set -euo pipefail

MARKER="# written by sparsebench ci/slurm_up.sh"
SLURM_CONF_PATH=${SLURM_CONF_PATH:-/etc/slurm/slurm.conf}
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-6818}

install=0
if [[ "${1:-}" == "--install" ]]; then install=1; shift; fi
STATE=${1:?usage: ci/slurm_up.sh [--install] STATE_DIR}

die() { echo "slurm_up: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (slurmd launches the jobs); uid is $(id -u)"

need=(munged slurmctld slurmd sbatch squeue sinfo scontrol srun)
missing() { for b in "${need[@]}"; do command -v "$b" >/dev/null || { echo "$b"; return; }; done; }
if [[ -n "$(missing)" ]]; then
    [[ $install == 1 ]] || die "missing $(missing); install with: apt-get install -y slurm-wlm munge (or pass --install)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge >/dev/null
    [[ -z "$(missing)" ]] || die "still missing $(missing) after apt-get install slurm-wlm munge"
fi

if [[ -e "$SLURM_CONF_PATH" ]] && ! grep -qF "$MARKER" "$SLURM_CONF_PATH"; then
    die "$SLURM_CONF_PATH exists and was not written by this script; refusing to overwrite a real SLURM config"
fi
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is in use (is another slurmctld/slurmd running? set SLURM_TEST_CTLD_PORT/SLURM_TEST_SLURMD_PORT)"
    fi
done

mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
# munged refuses sockets/keys in group- or world-writable directories.
chmod 0755 "$STATE"
mkdir -p "$STATE"/{munge,ctld,spool,log}
chmod 0700 "$STATE/munge"

# --- munge: our own key and socket ------------------------------------------
KEY="$STATE/munge/munge.key"
SOCK="$STATE/munge/munge.socket.2"
[[ -f "$KEY" ]] || { head -c 1024 /dev/urandom >"$KEY"; chmod 0400 "$KEY"; }
munged --force --key-file="$KEY" --socket="$SOCK" --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed"
munge --socket="$SOCK" -n | unmunge --socket="$SOCK" >/dev/null || die "munge round trip failed; see $STATE/log/munged.log"

# --- slurm.conf: one node (this machine) on 127.0.0.1 -------------------------
HOST=$(hostname -s)
read -r CPUS MEM < <(slurmd -C | awk '/^NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]} print v["CPUs"], v["RealMemory"]}')
[[ -n "$CPUS" && -n "$MEM" ]] || die "could not read CPUs/RealMemory from 'slurmd -C'"
MEM=$((MEM * 9 / 10))  # leave room for the daemons and the submitting snakemake

mkdir -p "$(dirname "$SLURM_CONF_PATH")"
cat >"$SLURM_CONF_PATH" <<EOF
$MARKER for state dir $STATE; ci/slurm_down.sh removes it
ClusterName=sparsebench
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
MpiDefault=none
# no systemd, no cgroup delegation in a container: track processes via /proc, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.log
# keep finished jobs visible to squeue (the executor's status command without sacct)
MinJobAge=3600
# jobs that ask for no memory get 1 GB per CPU, not the whole node
DefMemPerCPU=1000
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# --- daemons --------------------------------------------------------------------
slurmctld -c || die "slurmctld failed to start; see $STATE/log/slurmctld.log"
slurmd -N "$HOST" || die "slurmd failed to start; see $STATE/log/slurmd.log"

for _ in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle | mixed | allocated) break ;;
        down* | drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
[[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] ||
    die "node $HOST is '$state' after 60 s; see $STATE/log/slurmctld.log and slurmd.log"

# A job step end to end (allocation, launch, munge credentials) before anyone relies on it.
out=$(timeout 60 srun -N1 -n1 -t 1 hostname 2>&1) || die "srun hostname failed: $out"
