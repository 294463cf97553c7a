#!/bin/sh
# Regenerates kernels.ptx from kernels.cu with clang-16 (no CUDA headers).
set -e
cd "$(dirname "$0")"
${CLANG:-clang-16} -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_80 -S -O3 -o kernels.ptx kernels.cu
