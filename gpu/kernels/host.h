//go:build ignore

/* host.h: what the kernels in kernels.cu need to compile as plain C for the
 * host. The launcher (host.c) sets the thread-local indices before each call,
 * one call per thread, so the kernels run unchanged. */
#ifndef TDM_HOST_H
#define TDM_HOST_H

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef struct { unsigned int x, y, z; } tdm_dim3;

static _Thread_local tdm_dim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__ static inline

#endif
