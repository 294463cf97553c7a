//go:build ignore

/* A test kernel for the stand-in: y[i] = a·x[i] + y[i] for i < n, run the
 * way the kernels' host launcher runs kernels (one call per thread). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct axpy_params {
	uint64_t x, y; /* float* device pointers */
	float a;
	int32_t n;
};

int tdm_host_launch(const char *name, const unsigned int grid[3], const unsigned int block[3],
	const void *params, size_t size) {
	if (strcmp(name, "tdm_test_axpy") != 0) return 1;
	if (size != sizeof(struct axpy_params)) return 2;
	const struct axpy_params *p = params;
	const float *x = (const float *)(uintptr_t)p->x;
	float *y = (float *)(uintptr_t)p->y;
	for (unsigned bx = 0; bx < grid[0]; bx++)
		for (unsigned tx = 0; tx < block[0]; tx++) {
			long i = (long)bx * block[0] + tx;
			if (i < p->n) y[i] = p->a * x[i] + y[i];
		}
	return 0;
}
