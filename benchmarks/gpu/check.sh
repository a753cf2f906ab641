#!/usr/bin/env bash
# Every check that needs a CUDA GPU, as one command of about 5 minutes on a lent GPU machine:
# the CUDA tests (tests/test_cuda.py, and tuner.export's end-to-end test, which retrains on the
# GPU when there is one), then the export's retrain timed on the GPU against its CPU
# (benchmarks/export_seeds.py: the default study's pick at 1 and 10 seeds, RL Zoo's config at 1
# and 64). Outputs go to $OUT (or /tmp/gpu-check).
#
#     bash benchmarks/gpu/wheels.sh          # here, once: what the GPU machine's Python lacks
#     # then on the GPU machine, from the repository root, with .whl/ carried along:
#     bash benchmarks/gpu/check.sh
#
# DRY_RUN=1 bash benchmarks/gpu/check.sh tries it where there is no GPU (with Python 3.12 first
# on the PATH, as on the GPU machine).
#
# SB3's one-seed time for issue 4's "64 seeds in no more than SB3's one seed" comes from
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
    # side runs on the CPU, and export_seeds.py times the CPU alone
    [ "${DRY_RUN:-0}" = 1 ] || { echo "no CUDA GPU: nothing to check (DRY_RUN=1 to try the script)"; exit 1; }
    export TUNER_TEST_DEVICE=cpu
fi

timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    "tests/test_export.py::test_export_writes_a_trainable_best_config_verified_on_fresh_seeds" \
    2>&1 | tee "$OUT/pytest.txt"
tests=${PIPESTATUS[0]}

timeout 300 python3 benchmarks/export_seeds.py --sizes 1,10 --zoo-sizes 1,64 --no-sb3 \
    --study-config studies/configs/cartpole_default_pick.yaml \
    --out "$OUT/export_seeds.json" 2>&1 | tee "$OUT/export_seeds.txt"
timing=${PIPESTATUS[0]}
echo "tests exit $tests, timing exit $timing" | tee -a "$OUT/machine.txt"
exit $(( tests || timing ))
