//go:build ignore

/*
 * standin.c: a host-memory stand-in for libcuda, libcublas, libcublasLt and
 * libnvrtc, for tests on machines without a GPU.
 *
 * One shared library serves all four: it defines every symbol that package
 * gpu/cuda resolves, with the C signatures of cuda.h, cublas_api.h,
 * cublasLt.h and nvrtc.h (CUDA 12/13).
 *
 *  - Device memory is calloc'd host memory; a device pointer is the host
 *    address. A freed block is poisoned (0xFF) and kept, never reused, so a
 *    later use of it is detected: kernel launch parameter words, GEMM and
 *    matmul operands and copy/memset targets that point into a freed block
 *    fail with CUDA_ERROR_ILLEGAL_ADDRESS (700) and count in standin_stale().
 *  - Work issued on a stream runs at once (synchronously), unless the stream
 *    is capturing: then it is recorded, with copies of everything that real
 *    CUDA would capture by value (kernel parameter bytes, alpha/beta,
 *    descriptor and layout attributes), and a graph launch replays it.
 *  - cuBLAS and cuBLASLt are reference column-major loops: A and B fp32 or
 *    bf16, C and D fp32, accumulation in float in k order (compile with
 *    -ffp-contract=off so that no multiply-add is fused). Every compute type
 *    computes in plain fp32.
 *  - A kernel launch runs tdm_host_launch, the kernels compiled for the host,
 *    when a source linked into this library defines it.
 *  - Every call appends one line "name key=value ..." to a log
 *    (standin_log); pointers are in hex, host scalars that the call reads
 *    through a pointer are logged as *name=value as well.
 *
 * A context must be current on the calling thread (cuCtxSetCurrent) for
 * allocations, streams, modules and launches, as with the real driver.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int cublasStatus_t;
typedef int nvrtcResult;
typedef unsigned long long CUdeviceptr;

enum {
	CUDA_SUCCESS = 0,
	CUDA_ERROR_INVALID_VALUE = 1,
	CUDA_ERROR_OUT_OF_MEMORY = 2,
	CUDA_ERROR_NOT_INITIALIZED = 3,
	CUDA_ERROR_INVALID_DEVICE = 101,
	CUDA_ERROR_INVALID_IMAGE = 200,
	CUDA_ERROR_INVALID_CONTEXT = 201,
	CUDA_ERROR_INVALID_HANDLE = 400,
	CUDA_ERROR_NOT_FOUND = 500,
	CUDA_ERROR_ILLEGAL_ADDRESS = 700,
	CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
	CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
	CUDA_ERROR_STREAM_CAPTURE_UNMATCHED = 903,
	CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD = 908,
};

enum {
	CUBLAS_STATUS_SUCCESS = 0,
	CUBLAS_STATUS_NOT_INITIALIZED = 1,
	CUBLAS_STATUS_ALLOC_FAILED = 3,
	CUBLAS_STATUS_INVALID_VALUE = 7,
	CUBLAS_STATUS_ARCH_MISMATCH = 8,
	CUBLAS_STATUS_MAPPING_ERROR = 11,
	CUBLAS_STATUS_EXECUTION_FAILED = 13,
	CUBLAS_STATUS_INTERNAL_ERROR = 14,
	CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

enum {
	NVRTC_SUCCESS = 0,
	NVRTC_ERROR_INVALID_INPUT = 3,
	NVRTC_ERROR_INVALID_PROGRAM = 4,
	NVRTC_ERROR_COMPILATION = 6,
};

enum { R32F = 0, R16BF = 14 };
enum { OP_N = 0, OP_T = 1, OP_C = 2 };

/* cublasLt.h, CUDA 12/13: cublasLtMatmulDescAttributes_t and cublasLtEpilogue_t. */
enum {
	LT_COMPUTE_TYPE = 0, LT_SCALE_TYPE = 1, LT_POINTER_MODE = 2,
	LT_TRANSA = 3, LT_TRANSB = 4, LT_TRANSC = 5,
	LT_EPILOGUE = 7, LT_BIAS_POINTER = 8, LT_BIAS_DATA_TYPE = 26,
};
enum { EPI_DEFAULT = 1, EPI_RELU = 2, EPI_BIAS = 4, EPI_RELU_BIAS = 6 };

/* The kernels compiled for the host, when linked in (gpu/kernels/host.c):
 * 0 success, 1 unknown kernel, 2 size is not the kernel's parameter size. */
__attribute__((weak)) int tdm_host_launch(const char *name, const unsigned int grid[3],
	const unsigned int block[3], const void *params, size_t size);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
#define LOCK() pthread_mutex_lock(&mu)
#define UNLOCK() pthread_mutex_unlock(&mu)

/* ---- call log ---- */

static char *logbuf;
static size_t loglen, logcap;

static void logline(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (loglen + (size_t)n + 2 > logcap) {
		size_t c = logcap ? logcap : 4096;
		while (loglen + (size_t)n + 2 > c) c *= 2;
		char *b = realloc(logbuf, c);
		if (!b) return;
		logbuf = b;
		logcap = c;
	}
	va_start(ap, fmt);
	vsnprintf(logbuf + loglen, (size_t)n + 1, fmt, ap);
	va_end(ap);
	loglen += (size_t)n;
	logbuf[loglen++] = '\n';
	logbuf[loglen] = 0;
}

#define P(x) ((unsigned long long)(uintptr_t)(x))

/* standin_log copies up to n bytes of the call log into buf and returns the
 * log's total length. */
size_t standin_log(char *buf, size_t n) {
	LOCK();
	size_t c = loglen < n ? loglen : n;
	if (buf && c) memcpy(buf, logbuf, c);
	size_t t = loglen;
	UNLOCK();
	return t;
}

static int stale_count;

/* standin_reset clears the call log and the stale-pointer count. Live
 * allocations, handles and graphs are kept. */
void standin_reset(void) {
	LOCK();
	loglen = 0;
	if (logbuf) logbuf[0] = 0;
	stale_count = 0;
	UNLOCK();
}

/* standin_stale is the number of operations refused for using freed memory. */
int standin_stale(void) {
	LOCK();
	int s = stale_count;
	UNLOCK();
	return s;
}

/* ---- device memory ---- */

struct block {
	uintptr_t base;
	size_t size;
	int freed;
};
static struct block *blocks;
static int nblocks, capblocks;

/* standin_live is the number of device allocations not yet freed. */
int standin_live(void) {
	LOCK();
	int n = 0;
	for (int i = 0; i < nblocks; i++) n += !blocks[i].freed;
	UNLOCK();
	return n;
}

/* find returns the block holding address v, or NULL. */
static struct block *find(uintptr_t v) {
	for (int i = 0; i < nblocks; i++)
		if (v >= blocks[i].base && v < blocks[i].base + (blocks[i].size ? blocks[i].size : 1))
			return &blocks[i];
	return NULL;
}

static int in_freed(uint64_t v) {
	struct block *b = find((uintptr_t)v);
	return b && b->freed;
}

/* check_range validates that [p, p+bytes) lies in one live block: 0 when it
 * does (or bytes is 0), 700 otherwise (counted as stale when p is freed). */
static int check_range(uint64_t p, size_t bytes, const char *what) {
	if (bytes == 0) return 0;
	struct block *b = find((uintptr_t)p);
	if (b && b->freed) {
		stale_count++;
		logline("standin: stale %s=0x%llx", what, (unsigned long long)p);
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	}
	if (!b || p + bytes > b->base + b->size) {
		logline("standin: out-of-bounds %s=0x%llx bytes=%zu", what, (unsigned long long)p, bytes);
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	}
	return 0;
}

struct hostblock {
	void *p;
	struct hostblock *next;
};
static struct hostblock *hosts;

/* ---- driver state ---- */

static int inited;
static int ctx_refs;
static char primary_ctx[64];
static __thread void *current_ctx;

#define NEED_INIT() do { if (!inited) return CUDA_ERROR_NOT_INITIALIZED; } while (0)
#define NEED_CTX() do { if (!inited) return CUDA_ERROR_NOT_INITIALIZED; \
	if (!current_ctx) return CUDA_ERROR_INVALID_CONTEXT; } while (0)

/* ---- recorded operations ---- */

enum { K_HTOD, K_DTOH, K_MEMSET, K_LAUNCH, K_GEMM, K_LT };

struct gemm {
	int ta, tb, m, n, k;
	float alpha, beta;
	uint64_t A, B, C;
	int atype, btype, ctype, lda, ldb, ldc;
	long long sA, sB, sC;
	int batch, compute, algo;
};

struct ltdesc {
	int compute, scale;
	int ta, tb;
	unsigned epilogue;
	uint64_t bias;
	int biastype;
};

struct ltlayout {
	int type;
	uint64_t rows, cols;
	int64_t ld;
};

struct ltcall {
	struct ltdesc d;
	struct ltlayout a, b, c, dl;
	float alpha, beta;
	uint64_t A, B, C, D, ws;
	size_t wsb;
};

struct op {
	int kind;
	uint64_t dptr;  /* device side of a copy or memset */
	void *host;     /* host side of a copy */
	size_t bytes;   /* copy bytes, or memset count */
	unsigned val;
	char name[256]; /* kernel */
	unsigned grid[3], block[3];
	void *params;
	size_t psize;
	struct gemm g;
	struct ltcall l;
};

struct graph {
	struct op *ops;
	int n, cap;
};

struct stream {
	int capturing;
	struct graph *cap;
	int magic;
};
#define STREAM_MAGIC 0x57ea3

static int graph_add(struct graph *g, struct op *o) {
	if (g->n == g->cap) {
		int c = g->cap ? 2 * g->cap : 16;
		struct op *ops = realloc(g->ops, (size_t)c * sizeof *ops);
		if (!ops) return CUDA_ERROR_OUT_OF_MEMORY;
		g->ops = ops;
		g->cap = c;
	}
	g->ops[g->n++] = *o;
	return 0;
}

static void graph_free(struct graph *g) {
	if (!g) return;
	for (int i = 0; i < g->n; i++) free(g->ops[i].params);
	free(g->ops);
	free(g);
}

/* capturing returns the graph recording stream s, or NULL. */
static struct graph *capturing(uintptr_t s) {
	struct stream *st = (struct stream *)s;
	if (!st || st->magic != STREAM_MAGIC || !st->capturing) return NULL;
	return st->cap;
}

static int run_op(struct op *o, int replay);

/* submit runs o now, or records it when stream s is capturing. */
static int submit(uintptr_t s, struct op *o) {
	struct graph *g = capturing(s);
	if (g) return graph_add(g, o);
	int r = run_op(o, 0);
	free(o->params);
	return r;
}

/* ---- reference GEMM ---- */

static float load(uint64_t base, int type, size_t idx) {
	if (type == R16BF) {
		uint32_t bits = (uint32_t)((const uint16_t *)(uintptr_t)base)[idx] << 16;
		float f;
		memcpy(&f, &bits, 4);
		return f;
	}
	return ((const float *)(uintptr_t)base)[idx];
}

static size_t esize(int type) { return type == R16BF ? 2 : 4; }

/* extent is the bytes spanned by a column-major rows×cols matrix. */
static size_t extent(uint64_t rows, uint64_t cols, int64_t ld, int type) {
	if (rows == 0 || cols == 0) return 0;
	return ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * esize(type);
}

static int gemm_check(const struct gemm *g) {
	if (g->ta < 0 || g->ta > 2 || g->tb < 0 || g->tb > 2) return CUBLAS_STATUS_INVALID_VALUE;
	if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
	int arows = g->ta == OP_N ? g->m : g->k;
	int brows = g->tb == OP_N ? g->k : g->n;
	if (g->lda < (arows > 1 ? arows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
	if (g->ldb < (brows > 1 ? brows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
	if (g->ldc < (g->m > 1 ? g->m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
	if (g->atype != g->btype || (g->atype != R32F && g->atype != R16BF) || g->ctype != R32F)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	if (g->compute != 68 && g->compute != 69 && g->compute != 75 && g->compute != 77)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	return 0;
}

/* gemm_run computes the (batched) product; 0, or 700 for a bad operand. */
static int gemm_run(const struct gemm *g) {
	int batch = g->batch;
	for (int bi = 0; bi < batch; bi++) {
		uint64_t A = g->A + (uint64_t)((long long)bi * g->sA * (long long)esize(g->atype));
		uint64_t B = g->B + (uint64_t)((long long)bi * g->sB * (long long)esize(g->btype));
		uint64_t C = g->C + (uint64_t)((long long)bi * g->sC * 4);
		int ar = g->ta == OP_N ? g->m : g->k, ac = g->ta == OP_N ? g->k : g->m;
		int br = g->tb == OP_N ? g->k : g->n, bc = g->tb == OP_N ? g->n : g->k;
		int r;
		if (g->k > 0 && g->m > 0 && g->n > 0) {
			if ((r = check_range(A, extent(ar, ac, g->lda, g->atype), "A"))) return r;
			if ((r = check_range(B, extent(br, bc, g->ldb, g->btype), "B"))) return r;
		}
		if ((r = check_range(C, extent(g->m, g->n, g->ldc, R32F), "C"))) return r;
		float *c = (float *)(uintptr_t)C;
		for (int j = 0; j < g->n; j++)
			for (int i = 0; i < g->m; i++) {
				float acc = 0;
				for (int l = 0; l < g->k; l++) {
					float a = g->ta == OP_N ? load(A, g->atype, (size_t)i + (size_t)l * g->lda)
								: load(A, g->atype, (size_t)l + (size_t)i * g->lda);
					float b = g->tb == OP_N ? load(B, g->btype, (size_t)l + (size_t)j * g->ldb)
								: load(B, g->btype, (size_t)j + (size_t)l * g->ldb);
					acc += a * b;
				}
				float *cij = &c[(size_t)i + (size_t)j * g->ldc];
				*cij = g->beta == 0 ? g->alpha * acc : g->alpha * acc + g->beta * *cij;
			}
	}
	return 0;
}

static int lt_check(const struct ltcall *l) {
	const struct ltlayout *ls[4] = {&l->a, &l->b, &l->c, &l->dl};
	for (int i = 0; i < 4; i++)
		if (ls[i]->ld < (int64_t)(ls[i]->rows > 1 ? ls[i]->rows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
	uint64_t m = l->d.ta == OP_N ? l->a.rows : l->a.cols, k = l->d.ta == OP_N ? l->a.cols : l->a.rows;
	uint64_t k2 = l->d.tb == OP_N ? l->b.rows : l->b.cols, n = l->d.tb == OP_N ? l->b.cols : l->b.rows;
	if (k != k2 || m != l->dl.rows || n != l->dl.cols || l->c.rows != l->dl.rows || l->c.cols != l->dl.cols)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (l->a.type != l->b.type || (l->a.type != R32F && l->a.type != R16BF) || l->c.type != R32F || l->dl.type != R32F)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	unsigned e = l->d.epilogue;
	if (e != EPI_DEFAULT && e != EPI_RELU && e != EPI_BIAS && e != EPI_RELU_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
	if ((e & EPI_BIAS) && (!l->d.bias || l->d.biastype != R32F)) return CUBLAS_STATUS_INVALID_VALUE;
	if (l->d.ta < 0 || l->d.ta > 2 || l->d.tb < 0 || l->d.tb > 2) return CUBLAS_STATUS_INVALID_VALUE;
	return 0;
}

static int lt_run(const struct ltcall *l) {
	int ta = l->d.ta, tb = l->d.tb;
	uint64_t m = l->dl.rows, n = l->dl.cols, k = ta == OP_N ? l->a.cols : l->a.rows;
	unsigned e = l->d.epilogue;
	int r;
	if (m && n && k) {
		if ((r = check_range(l->A, extent(l->a.rows, l->a.cols, l->a.ld, l->a.type), "A"))) return r;
		if ((r = check_range(l->B, extent(l->b.rows, l->b.cols, l->b.ld, l->b.type), "B"))) return r;
	}
	if (l->beta != 0 && (r = check_range(l->C, extent(m, n, l->c.ld, R32F), "C"))) return r;
	if ((r = check_range(l->D, extent(m, n, l->dl.ld, R32F), "D"))) return r;
	if ((e & EPI_BIAS) && (r = check_range(l->d.bias, m * 4, "bias"))) return r;
	if ((r = check_range(l->ws, l->wsb, "workspace"))) return r;
	const float *c = (const float *)(uintptr_t)l->C;
	float *d = (float *)(uintptr_t)l->D;
	const float *bias = (const float *)(uintptr_t)l->d.bias;
	for (uint64_t j = 0; j < n; j++)
		for (uint64_t i = 0; i < m; i++) {
			float acc = 0;
			for (uint64_t q = 0; q < k; q++) {
				float a = ta == OP_N ? load(l->A, l->a.type, i + q * l->a.ld) : load(l->A, l->a.type, q + i * l->a.ld);
				float b = tb == OP_N ? load(l->B, l->b.type, q + j * l->b.ld) : load(l->B, l->b.type, j + q * l->b.ld);
				acc += a * b;
			}
			float v = l->alpha * acc;
			if (l->beta != 0) v = v + l->beta * c[i + j * l->c.ld];
			if (e & EPI_BIAS) v = v + bias[i];
			if ((e & EPI_RELU) && !(v > 0)) v = 0;
			d[i + j * l->dl.ld] = v;
		}
	return 0;
}

/* run_op executes one operation; errors are CUresult values. */
static int run_op(struct op *o, int replay) {
	int r;
	switch (o->kind) {
	case K_HTOD:
		if (replay) logline("replay memcpyHtoD dst=0x%llx src=0x%llx bytes=%zu", (unsigned long long)o->dptr, P(o->host), o->bytes);
		if ((r = check_range(o->dptr, o->bytes, "dst"))) return r;
		memcpy((void *)(uintptr_t)o->dptr, o->host, o->bytes);
		return 0;
	case K_DTOH:
		if (replay) logline("replay memcpyDtoH dst=0x%llx src=0x%llx bytes=%zu", P(o->host), (unsigned long long)o->dptr, o->bytes);
		if ((r = check_range(o->dptr, o->bytes, "src"))) return r;
		memcpy(o->host, (const void *)(uintptr_t)o->dptr, o->bytes);
		return 0;
	case K_MEMSET: {
		if (replay) logline("replay memsetD32 dst=0x%llx value=%u count=%zu", (unsigned long long)o->dptr, o->val, o->bytes);
		if ((r = check_range(o->dptr, o->bytes * 4, "dst"))) return r;
		unsigned *p = (unsigned *)(uintptr_t)o->dptr;
		for (size_t i = 0; i < o->bytes; i++) p[i] = o->val;
		return 0;
	}
	case K_LAUNCH: {
		if (replay) logline("replay launch name=%s size=%zu", o->name, o->psize);
		for (size_t off = 0; off + 8 <= o->psize; off += 8) {
			uint64_t w;
			memcpy(&w, (const char *)o->params + off, 8);
			if (in_freed(w)) {
				stale_count++;
				logline("standin: stale pointer 0x%llx at offset %zu of %s's parameters", (unsigned long long)w, off, o->name);
				return CUDA_ERROR_ILLEGAL_ADDRESS;
			}
		}
		if (!tdm_host_launch) return CUDA_ERROR_NOT_FOUND;
		r = tdm_host_launch(o->name, o->grid, o->block, o->params, o->psize);
		if (r == 1) return CUDA_ERROR_NOT_FOUND;
		if (r != 0) return CUDA_ERROR_INVALID_VALUE;
		return 0;
	}
	case K_GEMM:
		if (replay) logline("replay gemm m=%d n=%d k=%d batch=%d", o->g.m, o->g.n, o->g.k, o->g.batch);
		return gemm_run(&o->g);
	case K_LT:
		if (replay) logline("replay matmul m=%llu n=%llu", (unsigned long long)o->l.dl.rows, (unsigned long long)o->l.dl.cols);
		return lt_run(&o->l);
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* ================= libcuda ================= */

CUresult cuInit(unsigned int flags) {
	LOCK();
	logline("cuInit flags=%u", flags);
	int r = flags ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
	if (!r) inited = 1;
	UNLOCK();
	return r;
}

CUresult cuDriverGetVersion(int *v) {
	LOCK();
	logline("cuDriverGetVersion driverVersion=0x%llx", P(v));
	UNLOCK();
	if (!v) return CUDA_ERROR_INVALID_VALUE;
	*v = 13000;
	return 0;
}

CUresult cuDeviceGetCount(int *n) {
	LOCK();
	logline("cuDeviceGetCount count=0x%llx", P(n));
	UNLOCK();
	NEED_INIT();
	if (!n) return CUDA_ERROR_INVALID_VALUE;
	*n = 1;
	return 0;
}

CUresult cuDeviceGet(int *dev, int ordinal) {
	LOCK();
	logline("cuDeviceGet device=0x%llx ordinal=%d", P(dev), ordinal);
	UNLOCK();
	NEED_INIT();
	if (!dev) return CUDA_ERROR_INVALID_VALUE;
	if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
	*dev = 0;
	return 0;
}

CUresult cuDeviceGetName(char *name, int len, int dev) {
	LOCK();
	logline("cuDeviceGetName name=0x%llx len=%d dev=%d", P(name), len, dev);
	UNLOCK();
	NEED_INIT();
	if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
	if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
	snprintf(name, (size_t)len, "%s", "tandem stand-in");
	return 0;
}

CUresult cuDeviceGetAttribute(int *v, int attrib, int dev) {
	LOCK();
	logline("cuDeviceGetAttribute pi=0x%llx attrib=%d dev=%d", P(v), attrib, dev);
	UNLOCK();
	NEED_INIT();
	if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
	if (!v) return CUDA_ERROR_INVALID_VALUE;
	switch (attrib) {
	case 75: *v = 9; break;   /* COMPUTE_CAPABILITY_MAJOR */
	case 76: *v = 0; break;   /* COMPUTE_CAPABILITY_MINOR */
	case 16: *v = 132; break; /* MULTIPROCESSOR_COUNT */
	case 1: *v = 1024; break; /* MAX_THREADS_PER_BLOCK */
	case 10: *v = 32; break;  /* WARP_SIZE */
	default: *v = 0;
	}
	return 0;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, int dev) {
	LOCK();
	logline("cuDeviceTotalMem_v2 bytes=0x%llx dev=%d", P(bytes), dev);
	UNLOCK();
	NEED_INIT();
	if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
	if (!bytes) return CUDA_ERROR_INVALID_VALUE;
	*bytes = (size_t)80 << 30;
	return 0;
}

CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
	LOCK();
	logline("cuDevicePrimaryCtxRetain pctx=0x%llx dev=%d", P(ctx), dev);
	int r = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (dev != 0) r = CUDA_ERROR_INVALID_DEVICE;
	else if (!ctx) r = CUDA_ERROR_INVALID_VALUE;
	else {
		ctx_refs++;
		*ctx = primary_ctx;
	}
	UNLOCK();
	return r;
}

CUresult cuDevicePrimaryCtxRelease_v2(int dev) {
	LOCK();
	logline("cuDevicePrimaryCtxRelease_v2 dev=%d", dev);
	int r = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (dev != 0) r = CUDA_ERROR_INVALID_DEVICE;
	else if (ctx_refs == 0) r = CUDA_ERROR_INVALID_CONTEXT;
	else ctx_refs--;
	UNLOCK();
	return r;
}

CUresult cuCtxSetCurrent(void *ctx) {
	LOCK();
	logline("cuCtxSetCurrent ctx=0x%llx", P(ctx));
	int r = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (ctx && (ctx != (void *)primary_ctx || ctx_refs == 0)) r = CUDA_ERROR_INVALID_CONTEXT;
	else current_ctx = ctx;
	UNLOCK();
	return r;
}

CUresult cuCtxSynchronize(void) {
	LOCK();
	logline("cuCtxSynchronize");
	UNLOCK();
	NEED_CTX();
	return 0;
}

CUresult cuStreamCreate(void **s, unsigned int flags) {
	LOCK();
	logline("cuStreamCreate phStream=0x%llx Flags=%u", P(s), flags);
	UNLOCK();
	NEED_CTX();
	if (!s || flags > 1) return CUDA_ERROR_INVALID_VALUE;
	struct stream *st = calloc(1, sizeof *st);
	if (!st) return CUDA_ERROR_OUT_OF_MEMORY;
	st->magic = STREAM_MAGIC;
	*s = st;
	return 0;
}

static int bad_stream(uintptr_t s) {
	return s && ((struct stream *)s)->magic != STREAM_MAGIC;
}

CUresult cuStreamDestroy_v2(void *s) {
	LOCK();
	logline("cuStreamDestroy_v2 hStream=0x%llx", P(s));
	int r = 0;
	struct stream *st = s;
	if (!st || st->magic != STREAM_MAGIC) r = CUDA_ERROR_INVALID_HANDLE;
	else {
		if (st->capturing) graph_free(st->cap);
		st->magic = 0;
		free(st);
	}
	UNLOCK();
	return r;
}

CUresult cuStreamSynchronize(void *s) {
	LOCK();
	logline("cuStreamSynchronize hStream=0x%llx", P(s));
	int r = 0;
	if (bad_stream((uintptr_t)s)) r = CUDA_ERROR_INVALID_HANDLE;
	else if (capturing((uintptr_t)s)) r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	UNLOCK();
	return r;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes) {
	LOCK();
	logline("cuMemAlloc_v2 dptr=0x%llx bytesize=%zu", P(dptr), bytes);
	int r = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (!current_ctx) r = CUDA_ERROR_INVALID_CONTEXT;
	else if (!dptr || bytes == 0) r = CUDA_ERROR_INVALID_VALUE;
	else if (bytes > ((size_t)80 << 30)) r = CUDA_ERROR_OUT_OF_MEMORY;
	else {
		void *p = calloc(1, bytes);
		if (!p) r = CUDA_ERROR_OUT_OF_MEMORY;
		else if (nblocks == capblocks) {
			int c = capblocks ? 2 * capblocks : 64;
			struct block *b = realloc(blocks, (size_t)c * sizeof *b);
			if (!b) {
				free(p);
				r = CUDA_ERROR_OUT_OF_MEMORY;
			} else {
				blocks = b;
				capblocks = c;
			}
		}
		if (!r) {
			blocks[nblocks++] = (struct block){(uintptr_t)p, bytes, 0};
			*dptr = (CUdeviceptr)(uintptr_t)p;
		}
	}
	UNLOCK();
	return r;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
	LOCK();
	logline("cuMemFree_v2 dptr=0x%llx", (unsigned long long)p);
	int r = 0;
	struct block *b = find((uintptr_t)p);
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (!b || b->base != (uintptr_t)p || b->freed) r = CUDA_ERROR_INVALID_VALUE;
	else {
		memset((void *)b->base, 0xFF, b->size);
		b->freed = 1;
	}
	UNLOCK();
	return r;
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytes) {
	LOCK();
	logline("cuMemAllocHost_v2 pp=0x%llx bytesize=%zu", P(pp), bytes);
	int r = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (!current_ctx) r = CUDA_ERROR_INVALID_CONTEXT;
	else if (!pp || bytes == 0) r = CUDA_ERROR_INVALID_VALUE;
	else {
		struct hostblock *h = malloc(sizeof *h);
		void *p = calloc(1, bytes);
		if (!h || !p) {
			free(h);
			free(p);
			r = CUDA_ERROR_OUT_OF_MEMORY;
		} else {
			h->p = p;
			h->next = hosts;
			hosts = h;
			*pp = p;
		}
	}
	UNLOCK();
	return r;
}

CUresult cuMemFreeHost(void *p) {
	LOCK();
	logline("cuMemFreeHost p=0x%llx", P(p));
	int r = CUDA_ERROR_INVALID_VALUE;
	for (struct hostblock **h = &hosts; *h; h = &(*h)->next)
		if ((*h)->p == p) {
			struct hostblock *d = *h;
			*h = d->next;
			free(d->p);
			free(d);
			r = 0;
			break;
		}
	UNLOCK();
	return r;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes, void *s) {
	LOCK();
	logline("cuMemcpyHtoDAsync_v2 dstDevice=0x%llx srcHost=0x%llx ByteCount=%zu hStream=0x%llx",
		(unsigned long long)dst, P(src), bytes, P(s));
	int r;
	if (bad_stream((uintptr_t)s)) r = CUDA_ERROR_INVALID_HANDLE;
	else {
		struct op o = {.kind = K_HTOD, .dptr = dst, .host = (void *)src, .bytes = bytes};
		r = submit((uintptr_t)s, &o);
	}
	UNLOCK();
	return r;
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes, void *s) {
	LOCK();
	logline("cuMemcpyDtoHAsync_v2 dstHost=0x%llx srcDevice=0x%llx ByteCount=%zu hStream=0x%llx",
		P(dst), (unsigned long long)src, bytes, P(s));
	int r;
	if (bad_stream((uintptr_t)s)) r = CUDA_ERROR_INVALID_HANDLE;
	else {
		struct op o = {.kind = K_DTOH, .dptr = src, .host = dst, .bytes = bytes};
		r = submit((uintptr_t)s, &o);
	}
	UNLOCK();
	return r;
}

CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int v, size_t n, void *s) {
	LOCK();
	logline("cuMemsetD32Async dstDevice=0x%llx ui=%u N=%zu hStream=0x%llx", (unsigned long long)dst, v, n, P(s));
	int r;
	if (bad_stream((uintptr_t)s)) r = CUDA_ERROR_INVALID_HANDLE;
	else {
		struct op o = {.kind = K_MEMSET, .dptr = dst, .bytes = n, .val = v};
		r = submit((uintptr_t)s, &o);
	}
	UNLOCK();
	return r;
}

struct module {
	int kind;
	int magic;
};
#define MODULE_MAGIC 0x30d01e
struct function {
	char name[256];
	int magic;
};
#define FUNC_MAGIC 0xf0c

static int module_kind;

/* standin_module_kind is what the last cuModuleLoadData got: 0 nothing,
 * 1 PTX text, 2 a CUBIN (anything that is not PTX). */
int standin_module_kind(void) {
	LOCK();
	int k = module_kind;
	UNLOCK();
	return k;
}

CUresult cuModuleLoadData(void **m, const void *image) {
	LOCK();
	logline("cuModuleLoadData module=0x%llx image=0x%llx", P(m), P(image));
	int r = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (!current_ctx) r = CUDA_ERROR_INVALID_CONTEXT;
	else if (!m || !image) r = CUDA_ERROR_INVALID_VALUE;
	else {
		const char *s = image;
		while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
		int kind = (!strncmp(s, "//", 2) || !strncmp(s, ".version", 8)) ? 1 : 2;
		struct module *md = calloc(1, sizeof *md);
		if (!md) r = CUDA_ERROR_OUT_OF_MEMORY;
		else {
			md->kind = kind;
			md->magic = MODULE_MAGIC;
			module_kind = kind;
			*m = md;
		}
	}
	UNLOCK();
	return r;
}

CUresult cuModuleUnload(void *m) {
	LOCK();
	logline("cuModuleUnload hmod=0x%llx", P(m));
	int r = 0;
	struct module *md = m;
	if (!md || md->magic != MODULE_MAGIC) r = CUDA_ERROR_INVALID_HANDLE;
	else {
		md->magic = 0;
		free(md);
	}
	UNLOCK();
	return r;
}

CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
	LOCK();
	logline("cuModuleGetFunction hfunc=0x%llx hmod=0x%llx name=%s", P(f), P(m), name ? name : "(null)");
	int r = 0;
	struct module *md = m;
	if (!md || md->magic != MODULE_MAGIC) r = CUDA_ERROR_INVALID_HANDLE;
	else if (!f || !name || strlen(name) >= 256) r = CUDA_ERROR_INVALID_VALUE;
	else {
		/* Functions stay allocated: a graph may name them after unload. */
		struct function *fn = calloc(1, sizeof *fn);
		if (!fn) r = CUDA_ERROR_OUT_OF_MEMORY;
		else {
			strcpy(fn->name, name);
			fn->magic = FUNC_MAGIC;
			*f = fn;
		}
	}
	UNLOCK();
	return r;
}

CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
	unsigned shared, void *s, void **params, void **extra) {
	LOCK();
	logline("cuLaunchKernel f=0x%llx gridDimX=%u gridDimY=%u gridDimZ=%u blockDimX=%u blockDimY=%u blockDimZ=%u "
		"sharedMemBytes=%u hStream=0x%llx kernelParams=0x%llx extra=0x%llx",
		P(f), gx, gy, gz, bx, by, bz, shared, P(s), P(params), P(extra));
	int r = 0;
	struct function *fn = f;
	const void *buf = NULL;
	size_t size = 0;
	int havesize = 0;
	if (!inited) r = CUDA_ERROR_NOT_INITIALIZED;
	else if (!current_ctx) r = CUDA_ERROR_INVALID_CONTEXT;
	else if (!fn || fn->magic != FUNC_MAGIC || bad_stream((uintptr_t)s)) r = CUDA_ERROR_INVALID_HANDLE;
	else if (params || !extra || !gx || !gy || !gz || !bx || !by || !bz || (unsigned long long)bx * by * bz > 1024)
		r = CUDA_ERROR_INVALID_VALUE;
	else {
		for (int i = 0; extra[i] != (void *)0; i += 2) {
			if (extra[i] == (void *)1) buf = extra[i + 1];
			else if (extra[i] == (void *)2) {
				size = *(const size_t *)extra[i + 1];
				havesize = 1;
			} else {
				r = CUDA_ERROR_INVALID_VALUE;
				break;
			}
		}
		if (!r && (!buf || !havesize)) r = CUDA_ERROR_INVALID_VALUE;
	}
	if (!r) {
		logline("cuLaunchKernel.extra name=%s size=%zu buffer=0x%llx", fn->name, size, P(buf));
		struct op o = {.kind = K_LAUNCH, .grid = {gx, gy, gz}, .block = {bx, by, bz}, .psize = size};
		strcpy(o.name, fn->name);
		o.params = malloc(size ? size : 1);
		if (!o.params) r = CUDA_ERROR_OUT_OF_MEMORY;
		else {
			memcpy(o.params, buf, size);
			r = submit((uintptr_t)s, &o);
		}
	}
	UNLOCK();
	return r;
}

CUresult cuStreamBeginCapture_v2(void *s, int mode) {
	LOCK();
	logline("cuStreamBeginCapture_v2 hStream=0x%llx mode=%d", P(s), mode);
	int r = 0;
	struct stream *st = s;
	if (!st) r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
	else if (st->magic != STREAM_MAGIC) r = CUDA_ERROR_INVALID_HANDLE;
	else if (mode < 0 || mode > 2) r = CUDA_ERROR_INVALID_VALUE;
	else if (st->capturing) r = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
	else if (!(st->cap = calloc(1, sizeof *st->cap))) r = CUDA_ERROR_OUT_OF_MEMORY;
	else st->capturing = 1;
	UNLOCK();
	return r;
}

CUresult cuStreamEndCapture(void *s, void **g) {
	LOCK();
	logline("cuStreamEndCapture hStream=0x%llx phGraph=0x%llx", P(s), P(g));
	int r = 0;
	struct stream *st = s;
	if (!st || st->magic != STREAM_MAGIC) r = CUDA_ERROR_INVALID_HANDLE;
	else if (!st->capturing) r = CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
	else if (!g) r = CUDA_ERROR_INVALID_VALUE;
	else {
		*g = st->cap;
		st->cap = NULL;
		st->capturing = 0;
	}
	UNLOCK();
	return r;
}

static struct graph *graph_copy(const struct graph *g) {
	struct graph *c = calloc(1, sizeof *c);
	if (!c) return NULL;
	for (int i = 0; i < g->n; i++) {
		struct op o = g->ops[i];
		if (o.params) {
			o.params = malloc(o.psize ? o.psize : 1);
			if (!o.params) {
				graph_free(c);
				return NULL;
			}
			memcpy(o.params, g->ops[i].params, o.psize);
		}
		if (graph_add(c, &o)) {
			free(o.params);
			graph_free(c);
			return NULL;
		}
	}
	return c;
}

CUresult cuGraphInstantiateWithFlags(void **exec, void *g, unsigned long long flags) {
	LOCK();
	logline("cuGraphInstantiateWithFlags phGraphExec=0x%llx hGraph=0x%llx flags=%llu", P(exec), P(g), flags);
	int r = 0;
	if (!exec || !g) r = CUDA_ERROR_INVALID_VALUE;
	else if (!(*exec = graph_copy(g))) r = CUDA_ERROR_OUT_OF_MEMORY;
	UNLOCK();
	return r;
}

CUresult cuGraphLaunch(void *exec, void *s) {
	LOCK();
	logline("cuGraphLaunch hGraphExec=0x%llx hStream=0x%llx", P(exec), P(s));
	int r = 0;
	struct graph *g = exec;
	if (!g || bad_stream((uintptr_t)s)) r = CUDA_ERROR_INVALID_HANDLE;
	else
		for (int i = 0; i < g->n && !r; i++) r = run_op(&g->ops[i], 1);
	UNLOCK();
	return r;
}

CUresult cuGraphExecDestroy(void *exec) {
	LOCK();
	logline("cuGraphExecDestroy hGraphExec=0x%llx", P(exec));
	graph_free(exec);
	UNLOCK();
	return exec ? 0 : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGraphDestroy(void *g) {
	LOCK();
	logline("cuGraphDestroy hGraph=0x%llx", P(g));
	graph_free(g);
	UNLOCK();
	return g ? 0 : CUDA_ERROR_INVALID_VALUE;
}

static const char *cu_name(int r) {
	switch (r) {
	case 0: return "CUDA_SUCCESS";
	case 1: return "CUDA_ERROR_INVALID_VALUE";
	case 2: return "CUDA_ERROR_OUT_OF_MEMORY";
	case 3: return "CUDA_ERROR_NOT_INITIALIZED";
	case 101: return "CUDA_ERROR_INVALID_DEVICE";
	case 200: return "CUDA_ERROR_INVALID_IMAGE";
	case 201: return "CUDA_ERROR_INVALID_CONTEXT";
	case 400: return "CUDA_ERROR_INVALID_HANDLE";
	case 500: return "CUDA_ERROR_NOT_FOUND";
	case 700: return "CUDA_ERROR_ILLEGAL_ADDRESS";
	case 900: return "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED";
	case 901: return "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED";
	case 903: return "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED";
	}
	return NULL;
}

static const char *cu_string(int r) {
	switch (r) {
	case 0: return "no error";
	case 1: return "invalid argument";
	case 2: return "out of memory";
	case 3: return "initialization error";
	case 101: return "invalid device ordinal";
	case 200: return "device kernel image is invalid";
	case 201: return "invalid device context";
	case 400: return "invalid resource handle";
	case 500: return "named symbol not found";
	case 700: return "an illegal memory access was encountered";
	case 900: return "operation not permitted when stream is capturing";
	case 901: return "operation failed due to a previous error during capture";
	case 903: return "capture was not initiated in this stream";
	}
	return NULL;
}

CUresult cuGetErrorName(CUresult e, const char **s) {
	LOCK();
	logline("cuGetErrorName error=%d pStr=0x%llx", e, P(s));
	UNLOCK();
	if (!s) return CUDA_ERROR_INVALID_VALUE;
	*s = cu_name(e);
	return *s ? 0 : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult e, const char **s) {
	LOCK();
	logline("cuGetErrorString error=%d pStr=0x%llx", e, P(s));
	UNLOCK();
	if (!s) return CUDA_ERROR_INVALID_VALUE;
	*s = cu_string(e);
	return *s ? 0 : CUDA_ERROR_INVALID_VALUE;
}

/* ================= libcublas ================= */

struct blas {
	int magic;
	uintptr_t stream;
	int math;
	uint64_t ws;
	size_t wsb;
};
#define BLAS_MAGIC 0xb1a5

#define BLAS_HANDLE(h) struct blas *b = (struct blas *)(h); \
	if (!b || b->magic != BLAS_MAGIC) { UNLOCK(); return CUBLAS_STATUS_NOT_INITIALIZED; }

cublasStatus_t cublasCreate_v2(void **h) {
	LOCK();
	logline("cublasCreate_v2 handle=0x%llx", P(h));
	int r = 0;
	if (!inited || !current_ctx) r = CUBLAS_STATUS_NOT_INITIALIZED;
	else if (!h) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		struct blas *b = calloc(1, sizeof *b);
		if (!b) r = CUBLAS_STATUS_ALLOC_FAILED;
		else {
			b->magic = BLAS_MAGIC;
			*h = b;
		}
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasDestroy_v2(void *h) {
	LOCK();
	logline("cublasDestroy_v2 handle=0x%llx", P(h));
	BLAS_HANDLE(h);
	b->magic = 0;
	free(b);
	UNLOCK();
	return 0;
}

cublasStatus_t cublasSetStream_v2(void *h, void *s) {
	LOCK();
	logline("cublasSetStream_v2 handle=0x%llx streamId=0x%llx", P(h), P(s));
	BLAS_HANDLE(h);
	b->stream = (uintptr_t)s;
	UNLOCK();
	return 0;
}

cublasStatus_t cublasSetMathMode(void *h, int mode) {
	LOCK();
	logline("cublasSetMathMode handle=0x%llx mode=%d", P(h), mode);
	BLAS_HANDLE(h);
	int r = 0;
	int base = mode & 0xf;
	if (base != 0 && base != 2 && base != 3) r = CUBLAS_STATUS_INVALID_VALUE;
	else b->math = mode;
	UNLOCK();
	return r;
}

cublasStatus_t cublasSetWorkspace_v2(void *h, void *ws, size_t bytes) {
	LOCK();
	logline("cublasSetWorkspace_v2 handle=0x%llx workspace=0x%llx workspaceSizeInBytes=%zu", P(h), P(ws), bytes);
	BLAS_HANDLE(h);
	int r = 0;
	if (bytes && check_range((uint64_t)(uintptr_t)ws, bytes, "workspace")) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		b->ws = (uint64_t)(uintptr_t)ws;
		b->wsb = bytes;
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasGetVersion_v2(void *h, int *v) {
	LOCK();
	logline("cublasGetVersion_v2 handle=0x%llx version=0x%llx", P(h), P(v));
	UNLOCK();
	if (!v) return CUBLAS_STATUS_INVALID_VALUE;
	*v = 130000;
	return 0;
}

static int blas_submit(struct blas *b, struct gemm *g) {
	int r = gemm_check(g);
	if (r) return r;
	struct op o = {.kind = K_GEMM, .g = *g};
	r = submit(b->stream, &o);
	if (r == CUDA_ERROR_ILLEGAL_ADDRESS) return CUBLAS_STATUS_EXECUTION_FAILED;
	if (r) return CUBLAS_STATUS_INTERNAL_ERROR;
	return 0;
}

cublasStatus_t cublasGemmEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha,
	const void *A, int atype, int lda, const void *B, int btype, int ldb, const void *beta,
	void *C, int ctype, int ldc, int compute, int algo) {
	LOCK();
	logline("cublasGemmEx handle=0x%llx transa=%d transb=%d m=%d n=%d k=%d alpha=0x%llx *alpha=%g A=0x%llx Atype=%d "
		"lda=%d B=0x%llx Btype=%d ldb=%d beta=0x%llx *beta=%g C=0x%llx Ctype=%d ldc=%d computeType=%d algo=%d",
		P(h), ta, tb, m, n, k, P(alpha), alpha ? *(const float *)alpha : 0.0, P(A), atype, lda, P(B), btype, ldb,
		P(beta), beta ? *(const float *)beta : 0.0, P(C), ctype, ldc, compute, algo);
	BLAS_HANDLE(h);
	int r;
	if (!alpha || !beta) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		struct gemm g = {ta, tb, m, n, k, *(const float *)alpha, *(const float *)beta,
			(uint64_t)(uintptr_t)A, (uint64_t)(uintptr_t)B, (uint64_t)(uintptr_t)C,
			atype, btype, ctype, lda, ldb, ldc, 0, 0, 0, 1, compute, algo};
		r = blas_submit(b, &g);
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasGemmStridedBatchedEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha,
	const void *A, int atype, int lda, long long sA, const void *B, int btype, int ldb, long long sB,
	const void *beta, void *C, int ctype, int ldc, long long sC, int batch, int compute, int algo) {
	LOCK();
	logline("cublasGemmStridedBatchedEx handle=0x%llx transa=%d transb=%d m=%d n=%d k=%d alpha=0x%llx *alpha=%g "
		"A=0x%llx Atype=%d lda=%d strideA=%lld B=0x%llx Btype=%d ldb=%d strideB=%lld beta=0x%llx *beta=%g "
		"C=0x%llx Ctype=%d ldc=%d strideC=%lld batchCount=%d computeType=%d algo=%d",
		P(h), ta, tb, m, n, k, P(alpha), alpha ? *(const float *)alpha : 0.0, P(A), atype, lda, sA, P(B), btype,
		ldb, sB, P(beta), beta ? *(const float *)beta : 0.0, P(C), ctype, ldc, sC, batch, compute, algo);
	BLAS_HANDLE(h);
	int r;
	if (!alpha || !beta) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		struct gemm g = {ta, tb, m, n, k, *(const float *)alpha, *(const float *)beta,
			(uint64_t)(uintptr_t)A, (uint64_t)(uintptr_t)B, (uint64_t)(uintptr_t)C,
			atype, btype, ctype, lda, ldb, ldc, sA, sB, sC, batch, compute, algo};
		r = blas_submit(b, &g);
	}
	UNLOCK();
	return r;
}

static const char *blas_name(int s) {
	switch (s) {
	case 0: return "CUBLAS_STATUS_SUCCESS";
	case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
	case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
	case 7: return "CUBLAS_STATUS_INVALID_VALUE";
	case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
	case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
	case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
	case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
	case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
	}
	return "CUBLAS_STATUS_UNKNOWN";
}

static const char *blas_string(int s) {
	switch (s) {
	case 0: return "success";
	case 1: return "the library was not initialized";
	case 3: return "the resource allocation failed";
	case 7: return "an invalid numeric value was used as an argument";
	case 8: return "an absent device architectural feature is required";
	case 11: return "an access to GPU memory space failed";
	case 13: return "the GPU program failed to execute";
	case 14: return "an internal operation failed";
	case 15: return "the functionality requested is not supported";
	}
	return "unknown error";
}

const char *cublasGetStatusName(cublasStatus_t s) {
	LOCK();
	logline("cublasGetStatusName status=%d", s);
	UNLOCK();
	return blas_name(s);
}

const char *cublasGetStatusString(cublasStatus_t s) {
	LOCK();
	logline("cublasGetStatusString status=%d", s);
	UNLOCK();
	return blas_string(s);
}

/* ================= libcublasLt ================= */

struct lthandle {
	int magic;
};
#define LT_MAGIC 0x17
struct ltdescobj {
	int magic;
	struct ltdesc d;
};
#define LTDESC_MAGIC 0x17de
struct ltlayoutobj {
	int magic;
	struct ltlayout l;
};
#define LTLAYOUT_MAGIC 0x171a

cublasStatus_t cublasLtCreate(void **h) {
	LOCK();
	logline("cublasLtCreate lightHandle=0x%llx", P(h));
	int r = 0;
	if (!h) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		struct lthandle *l = calloc(1, sizeof *l);
		if (!l) r = CUBLAS_STATUS_ALLOC_FAILED;
		else {
			l->magic = LT_MAGIC;
			*h = l;
		}
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasLtDestroy(void *h) {
	LOCK();
	logline("cublasLtDestroy lightHandle=0x%llx", P(h));
	struct lthandle *l = h;
	int r = 0;
	if (!l || l->magic != LT_MAGIC) r = CUBLAS_STATUS_NOT_INITIALIZED;
	else {
		l->magic = 0;
		free(l);
	}
	UNLOCK();
	return r;
}

size_t cublasLtGetVersion(void) {
	LOCK();
	logline("cublasLtGetVersion");
	UNLOCK();
	return 130000;
}

cublasStatus_t cublasLtMatmulDescCreate(void **d, int compute, int scale) {
	LOCK();
	logline("cublasLtMatmulDescCreate matmulDesc=0x%llx computeType=%d scaleType=%d", P(d), compute, scale);
	int r = 0;
	if (!d) r = CUBLAS_STATUS_INVALID_VALUE;
	else if (compute != 68 && compute != 69 && compute != 75 && compute != 77) r = CUBLAS_STATUS_NOT_SUPPORTED;
	else if (scale != R32F) r = CUBLAS_STATUS_NOT_SUPPORTED;
	else {
		struct ltdescobj *o = calloc(1, sizeof *o);
		if (!o) r = CUBLAS_STATUS_ALLOC_FAILED;
		else {
			o->magic = LTDESC_MAGIC;
			o->d.compute = compute;
			o->d.scale = scale;
			o->d.epilogue = EPI_DEFAULT;
			o->d.biastype = R32F;
			*d = o;
		}
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasLtMatmulDescDestroy(void *d) {
	LOCK();
	logline("cublasLtMatmulDescDestroy matmulDesc=0x%llx", P(d));
	struct ltdescobj *o = d;
	int r = 0;
	if (!o || o->magic != LTDESC_MAGIC) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		o->magic = 0;
		free(o);
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(void *d, int attr, const void *buf, size_t size) {
	LOCK();
	unsigned long long v = 0;
	if (buf && size <= 8) memcpy(&v, buf, size);
	logline("cublasLtMatmulDescSetAttribute matmulDesc=0x%llx attr=%d buf=0x%llx *buf=0x%llx sizeInBytes=%zu",
		P(d), attr, P(buf), v, size);
	struct ltdescobj *o = d;
	int r = 0;
	if (!o || o->magic != LTDESC_MAGIC || !buf) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		size_t want = attr == LT_BIAS_POINTER ? 8 : 4;
		if (size != want) r = CUBLAS_STATUS_INVALID_VALUE;
		else
			switch (attr) {
			case LT_COMPUTE_TYPE: o->d.compute = (int)v; break;
			case LT_SCALE_TYPE: o->d.scale = (int)v; break;
			case LT_TRANSA: o->d.ta = (int)v; break;
			case LT_TRANSB: o->d.tb = (int)v; break;
			case LT_EPILOGUE: o->d.epilogue = (unsigned)v; break;
			case LT_BIAS_POINTER: o->d.bias = v; break;
			case LT_BIAS_DATA_TYPE: o->d.biastype = (int)v; break;
			case LT_POINTER_MODE: if (v != 0) r = CUBLAS_STATUS_NOT_SUPPORTED; break;
			case LT_TRANSC: if (v != 0) r = CUBLAS_STATUS_NOT_SUPPORTED; break;
			default: r = CUBLAS_STATUS_NOT_SUPPORTED;
			}
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasLtMatrixLayoutCreate(void **l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
	LOCK();
	logline("cublasLtMatrixLayoutCreate matLayout=0x%llx type=%d rows=%llu cols=%llu ld=%lld", P(l), type,
		(unsigned long long)rows, (unsigned long long)cols, (long long)ld);
	int r = 0;
	if (!l) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		struct ltlayoutobj *o = calloc(1, sizeof *o);
		if (!o) r = CUBLAS_STATUS_ALLOC_FAILED;
		else {
			o->magic = LTLAYOUT_MAGIC;
			o->l = (struct ltlayout){type, rows, cols, ld};
			*l = o;
		}
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(void *l) {
	LOCK();
	logline("cublasLtMatrixLayoutDestroy matLayout=0x%llx", P(l));
	struct ltlayoutobj *o = l;
	int r = 0;
	if (!o || o->magic != LTLAYOUT_MAGIC) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		o->magic = 0;
		free(o);
	}
	UNLOCK();
	return r;
}

cublasStatus_t cublasLtMatmul(void *h, void *desc, const void *alpha, const void *A, void *Ad, const void *B,
	void *Bd, const void *beta, const void *C, void *Cd, void *D, void *Dd, const void *algo, void *ws,
	size_t wsb, void *s) {
	LOCK();
	logline("cublasLtMatmul lightHandle=0x%llx computeDesc=0x%llx alpha=0x%llx *alpha=%g A=0x%llx Adesc=0x%llx "
		"B=0x%llx Bdesc=0x%llx beta=0x%llx *beta=%g C=0x%llx Cdesc=0x%llx D=0x%llx Ddesc=0x%llx algo=0x%llx "
		"workspace=0x%llx workspaceSizeInBytes=%zu stream=0x%llx",
		P(h), P(desc), P(alpha), alpha ? *(const float *)alpha : 0.0, P(A), P(Ad), P(B), P(Bd), P(beta),
		beta ? *(const float *)beta : 0.0, P(C), P(Cd), P(D), P(Dd), P(algo), P(ws), wsb, P(s));
	int r = 0;
	struct lthandle *lh = h;
	struct ltdescobj *d = desc;
	struct ltlayoutobj *a = Ad, *b = Bd, *c = Cd, *dd = Dd;
	if (!lh || lh->magic != LT_MAGIC) r = CUBLAS_STATUS_NOT_INITIALIZED;
	else if (!d || d->magic != LTDESC_MAGIC || !a || a->magic != LTLAYOUT_MAGIC || !b || b->magic != LTLAYOUT_MAGIC ||
		 !c || c->magic != LTLAYOUT_MAGIC || !dd || dd->magic != LTLAYOUT_MAGIC || !alpha || !beta)
		r = CUBLAS_STATUS_INVALID_VALUE;
	else if (algo) r = CUBLAS_STATUS_NOT_SUPPORTED; /* only the implicit heuristic */
	else if (bad_stream((uintptr_t)s)) r = CUBLAS_STATUS_INVALID_VALUE;
	else {
		struct op o = {.kind = K_LT};
		o.l = (struct ltcall){d->d, a->l, b->l, c->l, dd->l, *(const float *)alpha, *(const float *)beta,
			(uint64_t)(uintptr_t)A, (uint64_t)(uintptr_t)B, (uint64_t)(uintptr_t)C, (uint64_t)(uintptr_t)D,
			(uint64_t)(uintptr_t)ws, wsb};
		r = lt_check(&o.l);
		if (!r) {
			r = submit((uintptr_t)s, &o);
			if (r == CUDA_ERROR_ILLEGAL_ADDRESS) r = CUBLAS_STATUS_EXECUTION_FAILED;
			else if (r) r = CUBLAS_STATUS_INTERNAL_ERROR;
		}
	}
	UNLOCK();
	return r;
}

const char *cublasLtGetStatusName(cublasStatus_t s) {
	LOCK();
	logline("cublasLtGetStatusName status=%d", s);
	UNLOCK();
	return blas_name(s);
}

const char *cublasLtGetStatusString(cublasStatus_t s) {
	LOCK();
	logline("cublasLtGetStatusString status=%d", s);
	UNLOCK();
	return blas_string(s);
}

/* ================= libnvrtc ================= */

struct program {
	int magic;
	char *src, *name, *log, *cubin;
	size_t cubinlen;
};
#define PROG_MAGIC 0x9e0

nvrtcResult nvrtcVersion(int *major, int *minor) {
	LOCK();
	logline("nvrtcVersion major=0x%llx minor=0x%llx", P(major), P(minor));
	UNLOCK();
	if (!major || !minor) return NVRTC_ERROR_INVALID_INPUT;
	*major = 13;
	*minor = 0;
	return 0;
}

static char *dupstr(const char *s) {
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d) memcpy(d, s, n);
	return d;
}

nvrtcResult nvrtcCreateProgram(void **prog, const char *src, const char *name, int nh, const char *const *headers,
	const char *const *includes) {
	LOCK();
	logline("nvrtcCreateProgram prog=0x%llx src=0x%llx srclen=%zu name=%s numHeaders=%d headers=0x%llx "
		"includeNames=0x%llx", P(prog), P(src), src ? strlen(src) : (size_t)0, name ? name : "(null)", nh,
		P(headers), P(includes));
	int r = 0;
	if (!prog || !src || nh < 0 || (nh > 0 && (!headers || !includes))) r = NVRTC_ERROR_INVALID_INPUT;
	else {
		struct program *p = calloc(1, sizeof *p);
		if (!p || !(p->src = dupstr(src)) || !(p->name = dupstr(name ? name : "default_program"))) {
			if (p) free(p->src);
			free(p);
			r = 1;
		} else {
			p->magic = PROG_MAGIC;
			*prog = p;
		}
	}
	UNLOCK();
	return r;
}

nvrtcResult nvrtcCompileProgram(void *prog, int n, const char *const *opts) {
	LOCK();
	logline("nvrtcCompileProgram prog=0x%llx numOptions=%d options=0x%llx", P(prog), n, P(opts));
	for (int i = 0; i < n && opts; i++) logline("nvrtcCompileProgram.option %d=%s", i, opts[i]);
	int r = 0;
	struct program *p = prog;
	if (!p || p->magic != PROG_MAGIC) r = NVRTC_ERROR_INVALID_PROGRAM;
	else if (n < 0 || (n > 0 && !opts)) r = NVRTC_ERROR_INVALID_INPUT;
	else {
		free(p->log);
		free(p->cubin);
		p->log = NULL;
		p->cubin = NULL;
		const char *fail = getenv("TANDEM_STANDIN_NVRTC_FAIL");
		if (fail && !strcmp(fail, "1")) {
			char msg[512];
			snprintf(msg, sizeof msg, "%s(1): error: stand-in compilation failure (TANDEM_STANDIN_NVRTC_FAIL=1)\n"
				"1 error detected in the compilation of \"%s\".\n", p->name, p->name);
			p->log = dupstr(msg);
			r = NVRTC_ERROR_COMPILATION;
		} else {
			uint64_t h = 1469598103934665603ULL; /* FNV-1a */
			for (const unsigned char *s = (const unsigned char *)p->src; *s; s++) h = (h ^ *s) * 1099511628211ULL;
			char out[64];
			int len = snprintf(out, sizeof out, "STANDIN-CUBIN\n%016llx\n", (unsigned long long)h);
			p->cubin = dupstr(out);
			p->cubinlen = (size_t)len;
			p->log = dupstr("");
		}
	}
	UNLOCK();
	return r;
}

nvrtcResult nvrtcGetProgramLogSize(void *prog, size_t *n) {
	LOCK();
	logline("nvrtcGetProgramLogSize prog=0x%llx logSizeRet=0x%llx", P(prog), P(n));
	struct program *p = prog;
	int r = 0;
	if (!p || p->magic != PROG_MAGIC) r = NVRTC_ERROR_INVALID_PROGRAM;
	else if (!n) r = NVRTC_ERROR_INVALID_INPUT;
	else *n = p->log ? strlen(p->log) + 1 : 1;
	UNLOCK();
	return r;
}

nvrtcResult nvrtcGetProgramLog(void *prog, char *log) {
	LOCK();
	logline("nvrtcGetProgramLog prog=0x%llx log=0x%llx", P(prog), P(log));
	struct program *p = prog;
	int r = 0;
	if (!p || p->magic != PROG_MAGIC) r = NVRTC_ERROR_INVALID_PROGRAM;
	else if (!log) r = NVRTC_ERROR_INVALID_INPUT;
	else strcpy(log, p->log ? p->log : "");
	UNLOCK();
	return r;
}

nvrtcResult nvrtcGetCUBINSize(void *prog, size_t *n) {
	LOCK();
	logline("nvrtcGetCUBINSize prog=0x%llx cubinSizeRet=0x%llx", P(prog), P(n));
	struct program *p = prog;
	int r = 0;
	if (!p || p->magic != PROG_MAGIC || !p->cubin) r = NVRTC_ERROR_INVALID_PROGRAM;
	else if (!n) r = NVRTC_ERROR_INVALID_INPUT;
	else *n = p->cubinlen;
	UNLOCK();
	return r;
}

nvrtcResult nvrtcGetCUBIN(void *prog, char *cubin) {
	LOCK();
	logline("nvrtcGetCUBIN prog=0x%llx cubin=0x%llx", P(prog), P(cubin));
	struct program *p = prog;
	int r = 0;
	if (!p || p->magic != PROG_MAGIC || !p->cubin) r = NVRTC_ERROR_INVALID_PROGRAM;
	else if (!cubin) r = NVRTC_ERROR_INVALID_INPUT;
	else memcpy(cubin, p->cubin, p->cubinlen);
	UNLOCK();
	return r;
}

nvrtcResult nvrtcDestroyProgram(void **prog) {
	LOCK();
	logline("nvrtcDestroyProgram prog=0x%llx", P(prog));
	int r = 0;
	struct program *p = prog ? *prog : NULL;
	if (!p || p->magic != PROG_MAGIC) r = NVRTC_ERROR_INVALID_PROGRAM;
	else {
		p->magic = 0;
		free(p->src);
		free(p->name);
		free(p->log);
		free(p->cubin);
		free(p);
		*prog = NULL;
	}
	UNLOCK();
	return r;
}

const char *nvrtcGetErrorString(nvrtcResult r) {
	LOCK();
	logline("nvrtcGetErrorString result=%d", r);
	UNLOCK();
	switch (r) {
	case 0: return "NVRTC_SUCCESS";
	case 1: return "NVRTC_ERROR_OUT_OF_MEMORY";
	case 2: return "NVRTC_ERROR_PROGRAM_CREATION_FAILURE";
	case 3: return "NVRTC_ERROR_INVALID_INPUT";
	case 4: return "NVRTC_ERROR_INVALID_PROGRAM";
	case 5: return "NVRTC_ERROR_INVALID_OPTION";
	case 6: return "NVRTC_ERROR_COMPILATION";
	}
	return "NVRTC_ERROR unknown";
}
