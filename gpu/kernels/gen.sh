#!/bin/sh
# Regenerates kernels.ptx from kernels.cu with clang-16 (no CUDA headers).
# With --check, compiles into a temporary file and fails if kernels.ptx
# differs from it (the compile check of the device code).
set -e
cd "$(dirname "$0")"
out=kernels.ptx
if [ "${1:-}" = --check ]; then
	out=$(mktemp)
	trap 'rm -f "$out"' EXIT
fi
${CLANG:-clang-16} -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_80 -S -O3 -o "$out" kernels.cu
if [ "$out" != kernels.ptx ] && ! cmp -s "$out" kernels.ptx; then
	echo "gpu/kernels/kernels.ptx is stale: run go generate ./gpu/kernels" >&2
	exit 1
fi
