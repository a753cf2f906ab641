#!/usr/bin/env bash
# Downloads into .whl/ the packages tuner needs that a bare GPU machine's Python (3.12, with
# torch, numpy, numba, matplotlib, pyyaml and tqdm already there) lacks, as wheels that
# benchmarks/gpu/check.sh installs there without a network. Run it here, once per checkout:
#     bash benchmarks/gpu/wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    gymnasium==1.4.0 farama-notifications==0.0.6 optuna==5.1.0 alembic==1.20.1 \
    colorlog==6.12.0 SQLAlchemy==2.1.9 Mako==1.4.3 greenlet==3.5.6
ls .whl
