#!/usr/bin/env bash
# A throw-away one-node Slurm cluster on this machine, for CI and local tests of
# `mim train ... --launcher slurm`. Debian/Ubuntu, root, no systemd needed.
#
#   tools/slurm_local.sh install  apt-get install slurm-wlm munge, unless already installed
#   tools/slurm_local.sh start    munged (unless one runs), slurmctld, slurmd; wait for `idle`
#   tools/slurm_local.sh status   print sinfo; exit 0 only when the node is up and idle
#   tools/slurm_local.sh stop     scontrol shutdown, then SIGTERM/SIGKILL what start started
#   tools/slurm_local.sh env      print `export SLURM_CONF=...` for clients (srun, sinfo, mim)
#
# Nothing outside $SLURM_LOCAL_DIR is written except munge's own directories (/run/munge,
# /var/lib/munge, /var/log/munge, and /etc/munge/munge.key if the package did not create it). The daemons read $SLURM_LOCAL_DIR/slurm.conf
# through SLURM_CONF, so /etc/slurm is left alone; clients need the same SLURM_CONF.
#
# Settings (environment):
#   SLURM_LOCAL_DIR        state, logs, pid files, slurm.conf   (default /tmp/a2mim-slurm)
#   SLURM_LOCAL_PARTITION  partition name                       (default ci)
#   SLURM_LOCAL_CPUS       CPUs the node advertises, may exceed nproc   (default 4)
#   SLURM_LOCAL_GPUS       fake "gpu" GRES count so that mim's `srun --gres=gpu:N` is accepted;
#                          the devices are symlinks to /dev/null and nothing opens them  (default 2)
#   SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT             (default 6817 / 6818)
#   SLURM_LOCAL_TIMEOUT    seconds allowed for each waiting step (default 60)
#   SLURM_LOCAL_APT_TIMEOUT seconds allowed for apt-get         (default 240)
#
# Every step is bounded by `timeout`; `stop` is safe to call repeatedly and after a failed start.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/a2mim-slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-ci}
CPUS=${SLURM_LOCAL_CPUS:-4}
GPUS=${SLURM_LOCAL_GPUS:-2}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
WAIT=${SLURM_LOCAL_TIMEOUT:-60}
APT_WAIT=${SLURM_LOCAL_APT_TIMEOUT:-240}
export SLURM_CONF="$DIR/slurm.conf"
NODE=$(hostname -s)
MUNGE_PIDFILE=/run/munge/munged.pid

say() { echo "[slurm_local] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$1" ] && cat "$1" || true; }

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds or SECONDS pass
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

cmd_install() {
    if command -v srun >/dev/null && command -v slurmctld >/dev/null \
        && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        say "slurm-wlm and munge are installed"; return 0
    fi
    [ "$(id -u)" = 0 ] || die "installing slurm-wlm and munge needs root (apt-get)"
    command -v apt-get >/dev/null || die "no apt-get: install slurm-wlm and munge by hand"
    local apt=(timeout "$APT_WAIT" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
               -o Dpkg::Use-Pty=0 install --no-install-recommends slurm-wlm munge)
    # A package index that is missing or stale: update once and retry.
    "${apt[@]}" || { timeout "$APT_WAIT" apt-get -q update && "${apt[@]}"; } \
        || die "apt-get install slurm-wlm munge failed"
    command -v srun >/dev/null || die "srun still missing after apt-get install"
}

start_munge() {
    if alive "$(pid_of $MUNGE_PIDFILE)" && wait_for 5 sh -c 'munge -n | unmunge'; then
        say "using the running munged (pid $(pid_of $MUNGE_PIDFILE))"; return 0
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then  # the Debian postinst normally creates it
        timeout "$WAIT" mungekey -c -f -k /etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    timeout "$WAIT" runuser -u munge -- /usr/sbin/munged --force
    wait_for "$WAIT" sh -c 'munge -n | unmunge' || die "munged does not answer"
    pid_of $MUNGE_PIDFILE > "$DIR/run/munged.pid.ours"  # stop only a munged we started
    say "munged up (pid $(cat "$DIR/run/munged.pid.ours"))"
}

write_conf() {
    local gres_types="" node_gres=""
    mkdir -p "$DIR"/{state/ctld,state/d,run,log}
    if [ "$GPUS" -gt 0 ]; then
        # mim always adds `--gres=gpu:<gpus-per-node>` to srun. A gpu GRES needs device files:
        # without File= the node registers 0 GPUs and is drained; regular files log errors.
        # Symlinks to /dev/null (a character device) are accepted, tasks get
        # CUDA_VISIBLE_DEVICES=0,1,... and, with task/none, nothing ever opens them.
        mkdir -p "$DIR/fakegpu"
        for i in $(seq 0 $((GPUS - 1))); do ln -sfn /dev/null "$DIR/fakegpu/nvidia$i"; done
        gres_types="GresTypes=gpu"
        node_gres=" Gres=gpu:$GPUS"
        echo "NodeName=$NODE Name=gpu File=$DIR/fakegpu/nvidia[0-$((GPUS - 1))]" \
            > "$DIR/gres.conf"
    else
        rm -f "$DIR/gres.conf"
    fi
    cat > "$SLURM_CONF" <<EOF
# one-node test cluster written by tools/slurm_local.sh
ClusterName=a2mimci
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# cgroup plugins fail in containers/VMs without a freezer hierarchy: track via /proc
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# believe CPUs= below even when the machine has fewer cores
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
MailProg=/bin/true
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000$node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

node_idle() { [ "$(timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ]; }

cmd_start() {
    [ "$(id -u)" = 0 ] || die "starting slurmctld/slurmd/munged needs root"
    command -v slurmctld >/dev/null || die "slurm-wlm is not installed: run '$0 install'"
    if alive "$(pid_of "$DIR/run/slurmctld.pid")"; then
        die "a slurmctld from $DIR is already running; run '$0 stop' first"
    fi
    mkdir -p "$DIR/run"
    start_munge
    write_conf
    # -c: clean state (no jobs or drain reasons from an earlier cluster); -i: no state files yet
    timeout "$WAIT" slurmctld -c -i
    timeout "$WAIT" slurmd -N "$NODE"
    if ! wait_for "$WAIT" node_idle; then
        timeout 10 sinfo -R || true
        tail -n 20 "$DIR"/log/*.log >&2 || true
        die "node $NODE did not become idle within ${WAIT}s"
    fi
    say "cluster up: partition $PARTITION, node $NODE, $CPUS CPUs, $GPUS fake GPUs"
    say "clients need SLURM_CONF=$SLURM_CONF"
}

cmd_status() {
    [ -f "$SLURM_CONF" ] || { say "not started here (no $SLURM_CONF)"; return 1; }
    timeout 10 sinfo -o '%P %a %D %T %N %c %G' || return 1
    node_idle
}

stop_pid() {  # stop_pid PID NAME: wait for it, then SIGTERM, then SIGKILL
    local pid=$1 name=$2
    alive "$pid" || return 0
    wait_for 10 sh -c "! kill -0 $pid" && return 0
    say "$name ($pid) still running: SIGTERM"; kill -TERM "$pid" 2>/dev/null || true
    wait_for 5 sh -c "! kill -0 $pid" && return 0
    say "$name ($pid) still running: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    local ctld slurmd munged
    ctld=$(pid_of "$DIR/run/slurmctld.pid"); slurmd=$(pid_of "$DIR/run/slurmd.pid")
    munged=$(pid_of "$DIR/run/munged.pid.ours")
    if alive "$ctld" || alive "$slurmd"; then
        timeout 15 scontrol shutdown >/dev/null 2>&1 || true  # stops slurmctld and slurmd
    fi
    stop_pid "$slurmd" slurmd
    stop_pid "$ctld" slurmctld
    if [ -n "$munged" ] && alive "$munged"; then
        kill -TERM "$munged" 2>/dev/null || true
        stop_pid "$munged" munged
    fi
    rm -f "$DIR/run/munged.pid.ours"
    if alive "$ctld" || alive "$slurmd" || { [ -n "$munged" ] && alive "$munged"; }; then
        die "daemons left running"
    fi
    say "stopped"
}

case "${1:-}" in
    install) cmd_install ;;
    start)   cmd_start ;;
    status)  cmd_status ;;
    stop)    cmd_stop ;;
    env)     echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 install|start|status|stop|env" >&2; exit 2 ;;
esac
