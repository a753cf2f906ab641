#!/usr/bin/env bash
# Every check that needs a CUDA GPU, as one command of about 6 minutes on a lent GPU machine;
# each step has its own time limit, and a step that fails or runs out leaves the next to run:
#   1. the CUDA tests (tests/test_cuda.py, and tuner.export's end-to-end test, which retrains on
#      the GPU when there is one);
#   2. the export's verification retrain timed on the GPU (benchmarks/export_seeds.py): RL
#      Zoo's config at 1 and 64 seeds (issue 4's target: 64 seeds in no more than SB3's one
#      seed on the project's CPU), then the default study's pick at 1, 8, 32 and 128 seeds;
#   3. whether a seed trains to the same bits alone, in a batch and twice on the GPU
#      (benchmarks/gpu/batch_bits.py);
#   4. torch's profiler and cProfile over 10k steps of RL Zoo's config at 64 seeds, then the
#      default study's pick (with its evaluations) at 1 and 8 seeds
#      (benchmarks/gpu/profile_train.py): where the host and the GPU spend the time;
#   5. only when ONLY names it (train_cli): python -m tuner.train --device cuda on the default
#      study's pick, 4 seeds.
# Its outputs are 8 files (a device call brings back no more) in $OUT (or /tmp/gpu-check).
#
#     bash benchmarks/gpu/wheels.sh          # here, once: what the GPU machine's Python lacks
#     # then on the GPU machine, from the repository root, with .whl/ carried along:
#     bash benchmarks/gpu/check.sh
#
# ONLY="pytest batch_bits" bash benchmarks/gpu/check.sh runs those steps alone; ZOO_SIZES
# (default 1,64) sets RL Zoo's seed counts.
#
# DRY_RUN=1 bash benchmarks/gpu/check.sh tries it where there is no GPU: the tests' "device"
# side and batch_bits.py run on the CPU, and export_seeds.py times nothing (cuda alone).
#
# SB3's one-seed time for issue 4's target comes from benchmarks/export_seeds.py or
# benchmarks/vs_sb3.py on this project's CPU machine, not from here.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    nproc
    python3 -c "import sys, torch, numpy, numba, gymnasium, optuna
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'numpy', numpy.__version__, 'numba', numba.__version__,
      'gymnasium', gymnasium.__version__, 'optuna', optuna.__version__)
print('GPU:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} 2>&1 | tee "$OUT/machine.txt"
if ! python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    # DRY_RUN=1 checks this script and its wheels where there is no GPU: the tests' "device"
    # side and batch_bits.py run on the CPU, and export_seeds.py (cuda alone) times nothing
    [ "${DRY_RUN:-0}" = 1 ] || { echo "no CUDA GPU: nothing to check (DRY_RUN=1 to try the script)"; exit 1; }
    export TUNER_TEST_DEVICE=cpu
fi

step() {  # step NAME LIMIT_S COMMAND...: runs it, tees its output to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    [[ " $ONLY " == *" $name "* ]] || return 0
    echo "== $name (limit ${limit} s)"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "$name: exit $rc in $((SECONDS - start)) s" | tee -a "$OUT/machine.txt"
    return "$rc"
}

# 8 files come back from a device call: the default steps write exactly that many
ONLY=${ONLY:-pytest export_seeds_zoo export_seeds_study batch_bits profile}
failed=0
step pytest 200 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    "tests/test_export.py::test_export_writes_a_trainable_best_config_verified_on_fresh_seeds" \
    || failed=1
step export_seeds_zoo 120 python3 benchmarks/export_seeds.py --devices cuda --sizes "" \
    --zoo-sizes "${ZOO_SIZES:-1,64}" --no-sb3 --out "$OUT/export_seeds_zoo.json" || failed=1
step export_seeds_study 120 python3 benchmarks/export_seeds.py --devices cuda \
    --sizes 1,8,32,128 --zoo-sizes "" --no-sb3 \
    --study-config studies/configs/cartpole_default_pick.yaml \
    --out "$OUT/export_seeds_study.json" || failed=1
step batch_bits 75 python3 benchmarks/gpu/batch_bits.py --out /tmp/batch_bits.json || failed=1
step profile 180 bash -c 'for run in "rl_zoo 64 10000" "pick 1 10000 --evals" "pick 8 10000 --evals"; do
    set -- $run
    python3 benchmarks/gpu/profile_train.py --config $1 --seeds $2 --steps $3 ${4:-} \
        --out /tmp/profile_train.txt && cat /tmp/profile_train.txt || exit 1
    done' || failed=1
step train_cli 45 python3 -m tuner.train studies/configs/cartpole_default_pick.yaml --seeds 4 \
    --device "${TUNER_TEST_DEVICE:-cuda}" --out /tmp/train-cli || failed=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv \
    >>"$OUT/machine.txt" 2>&1
exit $failed
