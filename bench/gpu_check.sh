#!/usr/bin/env bash
# Everything a session with a GPU must measure for the t-SNE and ViT speed bars, in one call of
# the device tool (whose machine has PyTorch, scikit-learn and timm but not captum):
#
#   here, once:  mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#                python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
#                  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#                  -d .whl captum==0.9.0 openTSNE
#   device:      run(command="bash bench/gpu_check.sh", carry=[".whl"])
#
# Steps, each logged under $OUT (or artifacts/gpu_check) as it finishes, so that a run stopped at
# its time limit still returns what it measured: the GPU tests, the ViT benchmark (128 images),
# the t-SNE benchmark (10,000 and 70,000 x 50, scikit-learn and openTSNE beside it where they
# run, and vizlib without CUDA graphs, "vizlib eager"; its log says how many steps replayed as
# graphs, or why a capture failed), where its time goes (bench/tsne_stages.py), then the exact-vs-FFT crossover that sets AUTO_EXACT_MAX_CUDA in vizlib.embedding,
# and last the Layer Similarity page's CKA (bench/cka.py; no target, a table for the README).
# Takes about 6-8 minutes on one H100 (most of it scikit-learn at 10,000 points).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-artifacts/gpu_check}"
mkdir -p "$out"
: >"$out/steps.txt"
export PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
dev="${GPU_CHECK_DEVICE:-cuda}"  # GPU_CHECK_DEVICE=cpu GPU_CHECK_SIZES="500 1000" tries the script here
read -r -a sizes <<<"${GPU_CHECK_SIZES:-10000 70000 2000 4000 8000}"  # bench, bench, crossover...

if compgen -G ".whl/*.whl" >/dev/null && ! "$py" -c "import captum" 2>/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

step() {  # step NAME COMMAND...: run, tee to $out/NAME.txt, note the seconds and exit status
  local name="$1"
  shift
  local start=$SECONDS
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/steps.txt"
}

{ git rev-parse HEAD 2>/dev/null; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
  "$py" -c "import torch, sklearn; print('torch', torch.__version__, 'sklearn', sklearn.__version__)"; \
  nproc; } 2>&1 | tee "$out/machine.txt"

gpu_tests=$(grep -l "mark.gpu" tests/test_*.py)
# shellcheck disable=SC2086
step gpu-tests "$py" -m pytest -m gpu -p no:cacheprovider -q -ra --continue-on-collection-errors $gpu_tests
step bench-vit "$py" bench/vit.py --device "$dev"
step bench-tsne-small "$py" bench/tsne.py --device "$dev" --sizes "${sizes[0]}"
step bench-tsne-large "$py" bench/tsne.py --device "$dev" --sizes "${sizes[1]}" --repeats 2
step tsne-stages "$py" bench/tsne_stages.py --device "$dev" --sizes "${sizes[0]}" "${sizes[1]}"
step tsne-crossover-exact "$py" bench/tsne.py --device "$dev" --method exact \
  --sizes "${sizes[@]:2}" --vizlib-only --no-eager --repeats 2
step tsne-crossover-fft "$py" bench/tsne.py --device "$dev" --method fft \
  --sizes "${sizes[@]:2}" --vizlib-only --no-eager --repeats 2
step bench-cka "$py" bench/cka.py --device "$dev"
cat "$out/steps.txt"
