#!/usr/bin/env bash
# Stop the daemons that start-cluster.sh started (only the PIDs it recorded).
set -uo pipefail

STATE=${ALMOMD_SLURM_STATE:-/var/tmp/almomd-slurm}
PIDS=$STATE/pids
[[ -s $PIDS ]] || { echo "[stop-cluster] nothing recorded in $PIDS"; exit 0; }

scancel --user=root >/dev/null 2>&1 || true
# reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged
tac "$PIDS" | while read -r name pid; do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    # the PID may have been reused since (e.g. after a reboot): only end our daemons
    [[ $comm == "$name" || ($name == munged && $comm == runuser) ]] || continue
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "[stop-cluster] stopped $name ($pid)"
    fi
done
: >"$PIDS"
