#!/usr/bin/env bash
# Stop the single-node SLURM that ci/slurm_up.sh STATE_DIR started: slurmd,
# slurmctld and munged by their pid files (nothing else), then remove the
# slurm.conf it wrote. Logs stay in STATE_DIR/log. Safe to call twice or after
# a failed start.
set -uo pipefail

MARKER="# written by sparsebench ci/slurm_up.sh"
SLURM_CONF_PATH=${SLURM_CONF_PATH:-/etc/slurm/slurm.conf}
STATE=${1:?usage: ci/slurm_down.sh STATE_DIR}
[[ -d "$STATE" ]] && STATE=$(cd "$STATE" && pwd)

stop() {  # stop <pidfile>: TERM, wait up to 10 s, then KILL
    local pidfile=$1 pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile" 2>/dev/null)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

# Jobs first (slurmd's job steps would otherwise outlive it), then the daemons.
if [[ -f "$STATE/slurmctld.pid" ]] && command -v scancel >/dev/null; then
    timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null
fi
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
stop "$STATE/munge/munged.pid"

if [[ -f "$SLURM_CONF_PATH" ]] && grep -qF "$MARKER for state dir $STATE;" "$SLURM_CONF_PATH"; then
    rm -f "$SLURM_CONF_PATH"
fi
exit 0
