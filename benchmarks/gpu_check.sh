#!/usr/bin/env bash
# The device check for a lent GPU machine (the device tool's `run`), from the repository root:
#   run(command="bash benchmarks/gpu_check.sh", carry=["benchmarks/gpu_inputs"], timeout_s=420)
# benchmarks/gpu_inputs comes from `python benchmarks/gpu_check.py prepare` on the development machine.
# The GPU image has PyTorch but neither mepipe's other dependencies nor a network, so mepipe is put on
# the path through a shim package instead of being installed; only the torch solver and the models are used.
# Dry run on a CPU: PYTHON=.venv/bin/python DEVICE=cpu OUT=/tmp/gpu-dry bash benchmarks/gpu_check.sh --dry-run
# The training steps import mepipe.train, which needs zarr: its wheels (and numcodecs', donfig's, google-crc32c's)
# for the GPU image's Python 3.12 go in benchmarks/gpu_inputs/wheels (`python benchmarks/gpu_check.py wheels`).
set -euo pipefail
if compgen -G "benchmarks/gpu_inputs/wheels/*.whl" > /dev/null && [ "${DEVICE:-cuda}" = cuda ]; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    benchmarks/gpu_inputs/wheels/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
shim=/tmp/mepipe_shim/mepipe
mkdir -p "$shim"
touch "$shim/__init__.py"
for part in pipeline featurestore train cli; do ln -sfn "$PWD/$part" "$shim/$part"; done
export PYTHONPATH="/tmp/mepipe_shim${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/results/gpu-check}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/nvidia-smi.txt" || true
"${PYTHON:-python3}" benchmarks/gpu_check.py run --inputs benchmarks/gpu_inputs --device "${DEVICE:-cuda}" --out "$out" "$@" 2>&1 | tee "$out/log.txt"
