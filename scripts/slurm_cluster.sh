#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for trying the cluster path on one box and for CI's slurm tier:
#   scripts/slurm_cluster.sh start     install (Debian's packages) when missing, configure, start munge, MariaDB,
#                                      slurmdbd, slurmctld and slurmd; return once `sinfo` shows the node idle
#   scripts/slurm_cluster.sh stop      stop only the daemons `start` started (their pids are in the state dir)
#   scripts/slurm_cluster.sh status    what runs, and sinfo
# Needs root (slurmd runs jobs as their user and must be root). Everything lives under SWEEP_SLURM_DIR (default
# /tmp/sweep-slurm): logs, spool, the database; the files written outside it are /etc/slurm/slurm.conf (where sbatch,
# squeue and sacct look) and slurmdbd.conf beside it, and only when absent or written by this script.
# Container-friendly choices: proctrack/linuxproc and task/none (no cgroups), accounting through slurmdbd (without
# it submitit cannot learn that a job killed from outside has ended), a 10-s credential lifetime (a requeued job
# may start again 10 s after it ended, not the default 120 s).
set -euo pipefail

state=${SWEEP_SLURM_DIR:-/tmp/sweep-slurm}
conf=/etc/slurm/slurm.conf
dbd_conf=/etc/slurm/slurmdbd.conf  # slurmdbd reads it beside slurm.conf
marker="# written by sweep's scripts/slurm_cluster.sh"
db_port=${SWEEP_SLURM_DB_PORT:-13306}
cluster=sweep
host=$(hostname -s)

say() { echo "slurm_cluster: $*"; }
die() { echo "slurm_cluster: error: $*" >&2; exit 1; }

install_packages() {
    local missing=()
    for bin in sbatch slurmctld slurmd slurmdbd munged mariadbd; do
        command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them (Debian's slurm-wlm, slurmdbd, mariadb-server, munge)"
    say "installing slurm-wlm, slurmdbd, mariadb-server, munge (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd mariadb-server munge >/dev/null
}

record() { echo "$1 $2" >> "$state/pids"; }  # name pid: what stop may end

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "$what did not come up within ${seconds} s; see the logs in $state/log"
}

write_configs() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    mkdir -p /etc/slurm "$state"/{log,spool/ctld,spool/d}
    if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then
        die "$conf exists and was not written by this script; move it aside to use this single-node cluster"
    fi
    cat > "$conf" <<EOF
$marker (state in $state)
ClusterName=$cluster
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SchedulerParameters=defer_batch
MinJobAge=30
KillWait=10
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    if [ -e "$dbd_conf" ] && ! grep -qF "$marker" "$dbd_conf"; then
        die "$dbd_conf exists and was not written by this script; move it aside to use this single-node cluster"
    fi
    cat > "$dbd_conf" <<EOF
$marker
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=sweep-slurm
StorageLoc=slurm_acct_db
LogFile=$state/log/slurmdbd.log
PidFile=$state/slurmdbd.pid
EOF
    chmod 600 "$dbd_conf"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munge is already running; using it"
        return 0
    fi
    [ -s /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge && chown munge:munge /run/munge /var/lib/munge /var/log/munge
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground > "$state/log/munged.out" 2>&1 &
    record munged $!
    wait_for 10 munged bash -c 'munge -n </dev/null | unmunge'
}

start_mariadb() {
    local db="$state/mysql" sock="$state/mysqld/mysqld.sock"
    mkdir -p "$state/mysqld" && chown mysql:mysql "$state/mysqld"  # the socket's directory must be its user's
    if [ ! -d "$db/mysql" ]; then
        mkdir -p "$db" && chown mysql:mysql "$db"
        mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket \
            > "$state/log/mariadb-install.out" 2>&1 || die "mariadb-install-db failed; see $state/log/mariadb-install.out"
    fi
    /usr/sbin/mariadbd --user=mysql --datadir="$db" --socket="$sock" --port="$db_port" --bind-address=127.0.0.1 \
        --pid-file="$state/mysqld/mysqld.pid" --skip-log-error --innodb-buffer-pool-size=64M \
        > "$state/log/mariadbd.out" 2>&1 &
    record mariadbd $!
    wait_for 30 MariaDB mariadb --socket="$sock" -e 'select 1'
    mariadb --socket="$sock" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'sweep-slurm';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'sweep-slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start() {
    [ "$(id -u)" -eq 0 ] || die "run as root: slurmd must be root to start jobs"
    if [ -s "$state/pids" ]; then
        local up=0 down=0
        while read -r name pid; do
            if alive "$pid"; then up=$((up + 1)); else down=$((down + 1)); fi
        done < "$state/pids"
        if [ "$down" -eq 0 ] && sinfo -h -n "$host" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)$'; then
            say "already up (started earlier by this script; $state/pids)"
            return 0
        fi
        [ "$up" -eq 0 ] || die "a cluster from an earlier start is half up ($up daemons alive); run '$0 stop' first"
        rm -f "$state/pids"
    fi
    install_packages
    write_configs
    : > "$state/pids"
    start_munge
    start_mariadb
    /usr/sbin/slurmdbd -D > "$state/log/slurmdbd.out" 2>&1 &
    record slurmdbd $!
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$cluster" >/dev/null 2>&1 || true  # already there on a second start
    /usr/sbin/slurmctld -D -i > "$state/log/slurmctld.out" 2>&1 &
    record slurmctld $!
    wait_for 30 slurmctld scontrol ping
    /usr/sbin/slurmd -D > "$state/log/slurmd.out" 2>&1 &
    record slurmd $!
    wait_for 60 "the node (idle in sinfo)" bash -c "sinfo -h -n $host -o %t | grep -qx idle"
    say "up: node $host idle in partition debug ($(nproc) CPUs); accounting in $state/mysql; logs in $state/log"
}

stop() {
    [ -s "$state/pids" ] || { say "nothing to stop (no $state/pids)"; return 0; }
    local names=() pids=()
    while read -r name pid; do names+=("$name"); pids+=("$pid"); done < "$state/pids"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do  # the reverse of the starting order: slurmd first, munged last
        if alive "${pids[i]}"; then
            kill "${pids[i]}" 2>/dev/null || true
            for _ in $(seq 100); do alive "${pids[i]}" || break; sleep 0.1; done
            alive "${pids[i]}" && kill -9 "${pids[i]}" 2>/dev/null || true
            say "stopped ${names[i]} (pid ${pids[i]})"
        fi
    done
    rm -f "$state/pids"
}

status() {
    if [ -s "$state/pids" ]; then
        while read -r name pid; do
            if alive "$pid"; then say "$name running (pid $pid)"; else say "$name NOT running (pid $pid)"; fi
        done < "$state/pids"
    else
        say "not started by this script (no $state/pids)"
    fi
    sinfo 2>&1 || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (state in \$SWEEP_SLURM_DIR, default /tmp/sweep-slurm)" >&2; exit 2 ;;
esac
