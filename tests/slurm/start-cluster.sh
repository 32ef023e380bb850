#!/usr/bin/env bash
# Bring up a single-node Slurm cluster on localhost for the profile tests.
#
# Debian 12, run as root. Installs slurm-wlm, munge, slurmdbd and
# mariadb-server if missing, then starts munged, a private MariaDB, slurmdbd,
# slurmctld and slurmd. Two partitions on the one node: cpu (default) and gpu,
# with fake GPUs (gres gpu, one per CPU, character devices like /dev/null), and accounting so that sacct
# works. Idempotent: if the daemons it started are alive, it does nothing.
# The PIDs it starts are recorded in $STATE/pids; stop-cluster.sh ends only those.
set -euo pipefail

STATE=${ALMOMD_SLURM_STATE:-/var/tmp/almomd-slurm}
PIDS=$STATE/pids
DB_PORT=${ALMOMD_SLURM_DB_PORT:-33061}
CLUSTER=almomd
ACCOUNT=almomd

log() { echo "[start-cluster] $*"; }

all_alive() {
    [[ -s $PIDS ]] || return 1
    while read -r name pid; do
        kill -0 "$pid" 2>/dev/null || return 1
    done <"$PIDS"
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

if all_alive; then
    log "cluster already running (pids in $PIDS)"
    exit 0
fi
if [[ -s $PIDS ]]; then
    log "a previous cluster is partly down: stopping what is left"
    "$(dirname "$0")/stop-cluster.sh"
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "start-cluster.sh must run as root (it installs packages and starts daemons)" >&2
    exit 2
fi

missing=()
for cmd in slurmctld slurmd slurmdbd munged mariadbd sacctmgr; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
    log "installing Debian packages (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge slurmdbd mariadb-server >/dev/null
fi

mkdir -p "$STATE"/{slurmctld,slurmd,mysql,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
: >"$PIDS"
record() { echo "$1 $2" >>"$PIDS"; }

wait_for() { # description, timeout (s), command...
    local what=$1 timeout=$2
    shift 2
    for ((i = 0; i < timeout * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "[start-cluster] timed out waiting for $what" >&2
    return 1
}

# --- munge -------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
chmod 755 /run/munge
setsid runuser -u munge -- /usr/sbin/munged --force --foreground \
    >>"$STATE/log/munged.out" 2>&1 </dev/null &
record munged $!
wait_for munge 10 munge -n

# --- MariaDB on a private data directory and port ------------------------------
SOCKET=$STATE/mysql.sock
if [[ ! -d $STATE/mysql/mysql ]]; then
    mariadb-install-db --user=root --datadir="$STATE/mysql" \
        --auth-root-authentication-method=normal >"$STATE/log/mariadb-install.log" 2>&1
fi
setsid mariadbd --user=root --datadir="$STATE/mysql" --socket="$SOCKET" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --pid-file="$STATE/mariadb.pid" \
    --log-error="$STATE/log/mariadb.log" </dev/null >/dev/null 2>&1 &
record mariadbd $!
wait_for mariadb 60 mariadb --socket="$SOCKET" -uroot -e 'select 1'

# --- Slurm configuration --------------------------------------------------------
read -r CPUS MEMORY < <(slurmd -C | awk '/NodeName/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print v["CPUs"], int(v["RealMemory"] * 0.9) }')
cat >/etc/slurm/slurm.conf <<CONF
# written by almomd tests/slurm/start-cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
MinJobAge=300
KillWait=5
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY Gres=gpu:$CPUS State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
CONF
# fake GPUs, one per CPU so that GPU jobs can run side by side: character
# devices cloned from /dev/null (a plain file is rejected by slurmd)
: >/etc/slurm/gres.conf
for ((g = 0; g < CPUS; g++)); do
    [[ -e $STATE/dev/gpu$g ]] || { mkdir -p "$STATE/dev"; mknod "$STATE/dev/gpu$g" c 1 3; }
    echo "NodeName=localhost Name=gpu File=$STATE/dev/gpu$g" >>/etc/slurm/gres.conf
done
cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
CONF
chmod 600 /etc/slurm/slurmdbd.conf

# --- daemons --------------------------------------------------------------------
setsid slurmdbd -D >>"$STATE/log/slurmdbd.out" 2>&1 </dev/null &
record slurmdbd $!
wait_for slurmdbd 30 sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true

setsid slurmctld -D -i >>"$STATE/log/slurmctld.out" 2>&1 </dev/null &
record slurmctld $!
wait_for slurmctld 30 scontrol ping
setsid slurmd -D -N localhost >>"$STATE/log/slurmd.out" 2>&1 </dev/null &
record slurmd $!
wait_for "node localhost idle" 60 bash -c "sinfo -h -n localhost -o %T | grep -q idle"

log "cluster up: $(sinfo -h -o '%P %T %G' | tr '\n' ';') pids in $PIDS"
