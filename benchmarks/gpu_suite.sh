#!/usr/bin/env bash
# Everything that needs a GPU, on a machine with PyTorch but without FiftyOne (such as the lent
# device machines: Python 3.12, torch, torchvision, numpy, pytest, scikit-learn):
#
#   bash benchmarks/gpu_suite.sh [STAGE ...]      STAGE: tests resnet18 resnet50 precision (default: all)
#
#   tests      the engine's CUDA tests (float32 on CUDA equals the float64 reference to 1e-6 with
#              TF32 off; vmap; bf16 + channels_last) and the rest of the engine tests
#   resnet18   speed and memory, ResNet-18 at 32×32, N = 1k/10k/100k, K = 10, every variant
#   resnet50   speed and memory, ResNet-50 at 224×224, N = 1k/10k, K = 5
#   precision  Spearman of bf16/fp16 with float32 on trained checkpoints (benchmarks/precision_vog.py)
#
# Each stage fits in about 10 minutes on an H100. Results (JSON, logs) go to $OUT, or to
# benchmarks/results/gpu/ when OUT is unset; docs/performance.md says how to read them.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests resnet18 resnet50 precision)
status=0

run() {  # run NAME COMMAND...: tee the output into $out/NAME.log, remember a failure
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.log" || status=1
}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
fi
for stage in "${stages[@]}"; do
    case $stage in
    tests)
        run tests "$py" -m pytest -q -p no:cacheprovider -rs tests/test_engine.py tests/test_engine_strategies.py ;;
    resnet18)
        run resnet18 "$py" benchmarks/bench_vog.py --device cuda --model resnet18 --size 32 \
            --n 1000 10000 100000 --k 10 --batch-size 256 --rounds 1 --naive-max-n 10000 \
            --variants loop,vmap,bf16,bf16-all,fp16,channels_last,bf16+channels_last \
            --out "$out/cuda-resnet18-32.json" ;;
    resnet50)
        run resnet50 "$py" benchmarks/bench_vog.py --device cuda --model resnet50 --size 224 \
            --n 1000 10000 --k 5 --batch-size 128 --rounds 1 --naive-max-n 1000 \
            --variants loop,bf16,bf16-all,fp16,channels_last,bf16+channels_last \
            --out "$out/cuda-resnet50-224.json" ;;
    precision)
        run precision "$py" benchmarks/precision_vog.py --device cuda --n 1000 \
            --out "$out/cuda-precision.json" ;;
    *)
        echo "unknown stage '$stage': choose from tests resnet18 resnet50 precision" >&2
        exit 2 ;;
    esac
done
exit $status
