#!/usr/bin/env bash
# Pre-train a config as a Slurm batch job that saves on a signal and requeues itself.
#
#   tools/slurm_pretrain.sh CONFIG [WORK_DIR] [extra tools/train.py args...]
#
# Run it on the login node: it submits itself with sbatch, with nodes x GPUs taken from the
# config's name (`..._8xb256-...` = 8 GPUs x 256 images, so the total batch stays the recipe's):
# GPUS (default: the N of NxbM), GPUS_PER_NODE (default: min(GPUS, 8)), nodes = GPUS /
# GPUS_PER_NODE. Inside the job it runs MMPretrain's tools/train.py on every task with
# `--launcher slurm`; WORK_DIR (default work_dirs/<config name>) must stay the same across
# requeues. See docs/long_runs.md.
#
# What happens near the time limit (or on `scancel --signal=USR1 JOBID`):
#   --signal=USR1@180  Slurm sends SIGUSR1 to the training tasks (not to this shell: no `B:`)
#                      180 s before the limit. The PreemptionHook finishes the optimizer step,
#                      rank 0 writes iter_<N>.pth and last_checkpoint, every task exits 75.
#   exit code 75       this shell runs `scontrol requeue` once; the job goes back to the queue
#                      (Slurm holds it about 2 minutes) and the same command, run again by
#                      Slurm, resumes from last_checkpoint (AutoResumeHook).
#   --requeue          the job may be requeued (also by the cluster on node failure/preemption).
#   --open-mode=append every restart appends to the same output file.
#
# Settings (environment): PARTITION (required unless your cluster has a default), GPUS,
#   GPUS_PER_NODE, CPUS_PER_TASK (default 5), TIME (sbatch --time, e.g. 72:00:00),
#   SBATCH_ARGS (more sbatch options; they override the #SBATCH lines below, e.g.
#   "--signal=USR1@600" for a slow file system), SRUN_ARGS, SRUN_WAIT (seconds the other
#   tasks get after the first one ended, default 120), PYTHON (default python),
#   A2MIM_REQUEUE=0 (exit after the signal checkpoint without requeueing).
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=USR1@180
#SBATCH --output=%x-%j.out

PREEMPTED=75  # a2mim_plugin.engine.hooks.PREEMPTED_EXIT_CODE

die() { echo "slurm_pretrain.sh: $*" >&2; exit 2; }

CONFIG=${1:?usage: tools/slurm_pretrain.sh CONFIG [WORK_DIR] [train.py args...]}
shift
[ -f "$CONFIG" ] || die "config $CONFIG not found"
name=$(basename "$CONFIG" .py)
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then WORK_DIR=$1; shift; else WORK_DIR=work_dirs/$name; fi

if [ -z "${SLURM_JOB_ID:-}" ]; then  # login node: submit this script
    recipe_gpus=$(echo "$name" | sed -n 's/.*_\([0-9][0-9]*\)xb[0-9][0-9]*.*/\1/p')
    GPUS=${GPUS:-$recipe_gpus}
    [ -n "$GPUS" ] || die "no NxbM in the config name $name: set GPUS (and GPUS_PER_NODE)"
    GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
    [ $((GPUS % GPUS_PER_NODE)) -eq 0 ] \
        || die "GPUS=$GPUS is not a multiple of GPUS_PER_NODE=$GPUS_PER_NODE"
    if [ -n "$recipe_gpus" ] && [ "$GPUS" != "$recipe_gpus" ]; then
        echo "slurm_pretrain.sh: $GPUS GPUs for a recipe written for $recipe_gpus: the total" \
             "batch changes (TotalBatchCheckHook says more at the start)" >&2
    fi
    args=(--job-name="$name" --nodes=$((GPUS / GPUS_PER_NODE))
          --ntasks-per-node="$GPUS_PER_NODE" --gres=gpu:"$GPUS_PER_NODE"
          --cpus-per-task="${CPUS_PER_TASK:-5}")
    [ -n "${PARTITION:-}" ] && args+=(--partition="$PARTITION")
    [ -n "${TIME:-}" ] && args+=(--time="$TIME")
    # shellcheck disable=SC2086  # SBATCH_ARGS is a list of options
    exec sbatch --parsable "${args[@]}" ${SBATCH_ARGS:-} "$0" "$CONFIG" "$WORK_DIR" "$@"
fi

# Inside the job (first start or after a requeue: SLURM_RESTART_COUNT).
PYTHON=${PYTHON:-python}
TRAIN=$("$PYTHON" -c 'import mmpretrain, os.path as p; print(p.join(p.dirname(mmpretrain.__file__), ".mim", "tools", "train.py"))') \
    || die "$PYTHON cannot import mmpretrain"
echo "slurm_pretrain.sh: job $SLURM_JOB_ID start ${SLURM_RESTART_COUNT:-0}, $SLURM_NTASKS tasks, work dir $WORK_DIR"
# Not --kill-on-bad-exit=1: after a signal every task exits 75, and srun would SIGTERM the
# tasks still shutting down when the first one exits (the step then ends with 143, not 75).
# --wait ends the other tasks SRUN_WAIT seconds after the first one ended, crash or not.
# shellcheck disable=SC2086
srun --kill-on-bad-exit=0 --wait="${SRUN_WAIT:-120}" ${SRUN_ARGS:-} "$PYTHON" -u "$TRAIN" \
    "$CONFIG" --launcher slurm --work-dir "$WORK_DIR" "$@"
rc=$?
if [ "$rc" -eq "$PREEMPTED" ] && [ "${A2MIM_REQUEUE:-1}" = 1 ]; then
    echo "slurm_pretrain.sh: training saved and stopped (exit $rc); scontrol requeue $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID" || echo "slurm_pretrain.sh: requeue refused; resubmit" \
        "the same command to continue from $WORK_DIR/last_checkpoint" >&2
fi
exit "$rc"
