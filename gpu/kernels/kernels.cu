/* The GPU kernels, one C-subset source compiled three ways:
 *  - by NVRTC at start-up for the exact device (__CUDACC_RTC__),
 *  - by clang-16 into the committed kernels.ptx (gen.sh), without CUDA headers,
 *  - as plain C for the host emulation (host.c defines TDM_HOST).
 * Every kernel takes one parameter struct whose layout matches the Go struct of
 * the same name in kernels.go: pointers first, then 32-bit scalars, then
 * doubles. Each thread is independent (no shared memory, no barriers): a 1-D
 * grid of 256-thread blocks, thread i = blockIdx.x*blockDim.x+threadIdx.x,
 * returning when i is past the kernel's thread count. */

#if defined(TDM_HOST)
/* host.h is included by host.c before this file. */
#define KERNEL(name, T) static void name(T a)
#define TDM_GID() ((long long)blockIdx.x * blockDim.x + threadIdx.x)
#define TDM_FLOOR(x) floor(x)
#define TDM_SQRT(x) sqrt(x)
#define TDM_FMUL(x, y) ((float)(x) * (float)(y))
#define TDM_DMUL(x, y) ((double)(x) * (double)(y))
#define TDM_INLINE __device__

#elif defined(__clang__) && defined(__CUDA__) && !defined(__CUDACC_RTC__)
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define KERNEL(name, T) extern "C" __global__ void name(T a)
#define TDM_GID() ((long long)__nvvm_read_ptx_sreg_ctaid_x() * __nvvm_read_ptx_sreg_ntid_x() + __nvvm_read_ptx_sreg_tid_x())
#define TDM_FLOOR(x) __nvvm_floor_d(x)
#define TDM_SQRT(x) __nvvm_sqrt_rn_d(x)
#define TDM_FMUL(x, y) tdm_fmul((x), (y))
#define TDM_DMUL(x, y) tdm_dmul((x), (y))
#define TDM_INLINE static __device__ inline
/* LLVM folds the mul.rn builtins into plain multiplies, which clang's
 * default -ffp-contract=fast for CUDA then fuses with the next add; an
 * inline PTX multiply is rounded on its own, as the CPU rounds it. */
TDM_INLINE float tdm_fmul(float x, float y) {
	float r;
	asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(x), "f"(y));
	return r;
}
TDM_INLINE double tdm_dmul(double x, double y) {
	double r;
	asm("mul.rn.f64 %0, %1, %2;" : "=d"(r) : "d"(x), "d"(y));
	return r;
}

#else /* NVRTC */
#define KERNEL(name, T) extern "C" __global__ void name(T a)
#define TDM_GID() ((long long)blockIdx.x * blockDim.x + threadIdx.x)
#define TDM_FLOOR(x) floor(x)
#define TDM_SQRT(x) __dsqrt_rn(x)
#define TDM_FMUL(x, y) __fmul_rn((x), (y))
#define TDM_DMUL(x, y) __dmul_rn((x), (y))
#define TDM_INLINE static __device__ inline
#endif

typedef unsigned char tdm_u8;
typedef unsigned short tdm_u16;
typedef unsigned int tdm_u32;
typedef unsigned long long tdm_u64;

TDM_INLINE tdm_u32 tdm_f2u(float f) {
	union { float f; tdm_u32 u; } c;
	c.f = f;
	return c.u;
}

TDM_INLINE float tdm_u2f(tdm_u32 u) {
	union { float f; tdm_u32 u; } c;
	c.u = u;
	return c.f;
}

#define TDM_NEG_INF tdm_u2f(0xff800000u)
#define TDM_NAN tdm_u2f(0x7fc00000u)

TDM_INLINE tdm_u64 tdm_d2u(double f) {
	union { double f; tdm_u64 u; } c;
	c.f = f;
	return c.u;
}

TDM_INLINE double tdm_u2d(tdm_u64 u) {
	union { double f; tdm_u64 u; } c;
	c.u = u;
	return c.f;
}

/* Go's max and min (float32 and float64): a NaN operand gives NaN, and
 * max(−0, +0) = +0, min(−0, +0) = −0. */
TDM_INLINE float tdm_maxf(float x, float y) {
	if (x != x) return x;
	if (y != y) return y;
	if (x == y) return tdm_u2f(tdm_f2u(x) & tdm_f2u(y));
	return x > y ? x : y;
}

TDM_INLINE double tdm_maxd(double x, double y) {
	if (x != x) return x;
	if (y != y) return y;
	if (x == y) return tdm_u2d(tdm_d2u(x) & tdm_d2u(y));
	return x > y ? x : y;
}

TDM_INLINE double tdm_mind(double x, double y) {
	if (x != x) return x;
	if (y != y) return y;
	if (x == y) return tdm_u2d(tdm_d2u(x) | tdm_d2u(y));
	return x < y ? x : y;
}

/* tdm_exp32 is kernel.Exp32's e^x to float32 for a float64 x, operation for
 * operation: x = n·ln 2 + r reduced in float64, a degree-6 float32
 * polynomial for e^r, then the scale by 2^n. Only correctly rounded
 * operations, so every build gives the CPU engine's bits. */
TDM_INLINE float tdm_exp32(double x) {
	if (x != x) return (float)x;
	if (x > 88.722830000000002) return tdm_u2f(0x7f800000u);
	if (x < -103.97199999999999) return 0.0f;
	double n = TDM_FLOOR(TDM_DMUL(x, 1.4426950408889634) + 0.5);
	float r = (float)(x - TDM_DMUL(n, 0.69314718055994529));
	float p = TDM_FMUL(1.9875691500e-4f, r) + 1.3981999507e-3f;
	p = TDM_FMUL(p, r) + 8.3334519073e-3f;
	p = TDM_FMUL(p, r) + 4.1665795894e-2f;
	p = TDM_FMUL(p, r) + 1.6666665459e-1f;
	p = TDM_FMUL(p, r) + 5.0000001201e-1f;
	p = TDM_FMUL(TDM_FMUL(p, r), r) + r + 1.0f;
	int k = (int)n;
	if (k > 127) /* near overflow: 2^k in two steps */
		return TDM_FMUL(p, tdm_u2f(0x7f000000u)) * tdm_u2f((tdm_u32)k << 23);
	if (k < -126) /* subnormal result */
		return TDM_FMUL(p, tdm_u2f((tdm_u32)(k + 127 + 64) << 23)) * tdm_u2f(0x1f800000u);
	return TDM_FMUL(p, tdm_u2f((tdm_u32)(k + 127) << 23));
}

/* 1. Dst[r*Ldd+f*E+k] = Table[(Base[f]+Codes[r*Ldc+f])*E+k]. */
typedef struct {
	float *Dst;
	const int *Codes;
	const float *Table;
	const int *Base;
	int Rows, Fields, E, Ldd, Ldc;
} TdmEmbedGatherArgs;

KERNEL(tdm_embed_gather, TdmEmbedGatherArgs) {
	long long i = TDM_GID();
	long long n = (long long)a.Rows * a.Fields * a.E;
	if (i >= n) return;
	long long k = i % a.E, rf = i / a.E;
	long long f = rf % a.Fields, r = rf / a.Fields;
	long long row = (long long)a.Base[f] + a.Codes[r * a.Ldc + f];
	a.Dst[r * a.Ldd + f * a.E + k] = a.Table[row * a.E + k];
}

/* 2. Dst[r*Ldd+c] = Src[r*Lds+c], max(.,0) when Relu != 0. */
typedef struct {
	float *Dst;
	const float *Src;
	int Rows, Cols, Ldd, Lds, Relu;
} TdmCopyColsArgs;

KERNEL(tdm_copy_cols, TdmCopyColsArgs) {
	long long i = TDM_GID();
	if (i >= (long long)a.Rows * a.Cols) return;
	long long c = i % a.Cols, r = i / a.Cols;
	float v = a.Src[r * a.Lds + c];
	if (a.Relu != 0 && !(v > 0.0f)) v = v != v ? v : 0.0f;
	a.Dst[r * a.Ldd + c] = v;
}

/* 3. Batch-norm apply with clamping, in float64:
 * v = clamp(x, mu-c*sd, mu+c*sd), z = clamp((v-mu)/sd, -c, c), NaN -> 0,
 * Dst = (float)z*Weight+Bias. */
typedef struct {
	float *Dst;
	const float *Raw;
	const double *Mean, *SD;
	const float *Weight, *Bias;
	int Rows, N, Ldd, Ldr;
	double Clamp;
} TdmBNApplyArgs;

KERNEL(tdm_bn_apply, TdmBNApplyArgs) {
	long long i = TDM_GID();
	if (i >= (long long)a.Rows * a.N) return;
	long long j = i % a.N, r = i / a.N;
	double x = a.Raw[r * a.Ldr + j];
	double mu = a.Mean[j], sd = a.SD[j], c = a.Clamp;
	double v = tdm_mind(tdm_maxd(x, mu - TDM_DMUL(c, sd)), mu + TDM_DMUL(c, sd));
	double z = tdm_mind(tdm_maxd((v - mu) / sd, -c), c);
	if (z != z) z = 0;
	a.Dst[r * a.Ldd + j] = TDM_FMUL((float)z, a.Weight[j]) + a.Bias[j];
}

/* 4. Sequence tokens: row r of width W = ContentDim+ActDim+SurfDim+AgeDim is
 * [Content row (OOVRow when OOV[r] != 0) | ActT[Action[r]] | SurfT[Surface[r]]
 * | AgeT[Age[r]]]. */
typedef struct {
	float *Dst;
	const float *Content;
	const int *OOV, *Action, *Surface, *Age;
	const float *OOVRow, *ActT, *SurfT, *AgeT;
	int Rows, ContentDim, ActDim, SurfDim, AgeDim;
} TdmSeqTokensArgs;

KERNEL(tdm_seq_tokens, TdmSeqTokensArgs) {
	long long i = TDM_GID();
	long long w = (long long)a.ContentDim + a.ActDim + a.SurfDim + a.AgeDim;
	if (i >= (long long)a.Rows * w) return;
	long long c = i % w, r = i / w;
	float v;
	if (c < a.ContentDim) {
		v = a.OOV[r] != 0 ? a.OOVRow[c] : a.Content[r * a.ContentDim + c];
	} else if ((c -= a.ContentDim) < a.ActDim) {
		v = a.ActT[(long long)a.Action[r] * a.ActDim + c];
	} else if ((c -= a.ActDim) < a.SurfDim) {
		v = a.SurfT[(long long)a.Surface[r] * a.SurfDim + c];
	} else {
		c -= a.SurfDim;
		v = a.AgeT[(long long)a.Age[r] * a.AgeDim + c];
	}
	a.Dst[i] = v;
}

/* 5. X[r*D+k] += Pos[(r%L)*D+k]. */
typedef struct {
	float *X;
	const float *Pos;
	int Rows, L, D;
} TdmAddPosArgs;

KERNEL(tdm_add_pos, TdmAddPosArgs) {
	long long i = TDM_GID();
	if (i >= (long long)a.Rows * a.D) return;
	long long k = i % a.D, r = i / a.D;
	a.X[i] += a.Pos[(r % a.L) * a.D + k];
}

/* A row's softmax, the CPU engine's (kernel.Softmax's pure-Go math):
 * tdm_softmax_stats reads the row for its maximum (a NaN makes every weight
 * NaN, an infinite maximum shares the weight among its copies) and the
 * float64 sum of exp(x − max); tdm_softmax_weight is then one entry's
 * weight, float32(exp(x − max) · (1/sum)). An entry's weight depends only
 * on its value, so a row may be overwritten entry by entry. */
typedef struct {
	int mode;   /* 0 finite maximum, 1 NaN in the row, 2 infinite maximum */
	float m;    /* the maximum */
	float w;    /* mode 2: the weight of each entry equal to m */
	double inv; /* mode 0: 1 / sum */
} tdm_smx;

TDM_INLINE tdm_smx tdm_softmax_stats(const float *x, int n) {
	tdm_smx s;
	float m = x[0];
	int nan = 0;
	for (int j = 0; j < n; j++) {
		float v = x[j];
		if (v > m) m = v;
		else if (v != v) nan = 1;
	}
	s.m = m;
	s.w = 0.0f;
	s.inv = 0.0;
	s.mode = 0;
	if (nan) {
		s.mode = 1;
	} else if (m - m != 0.0f) { /* infinite */
		int c = 0;
		for (int j = 0; j < n; j++) c += x[j] == m;
		s.mode = 2;
		s.w = (float)(1.0 / c);
	} else {
		double sum = 0;
		for (int j = 0; j < n; j++) sum += (double)tdm_exp32((double)x[j] - (double)m);
		s.inv = 1.0 / sum;
	}
	return s;
}

TDM_INLINE float tdm_softmax_weight(const tdm_smx *s, float v) {
	if (s->mode == 1) return TDM_NAN;
	if (s->mode == 2) return v == s->m ? s->w : 0.0f;
	return (float)TDM_DMUL((double)tdm_exp32((double)v - (double)s->m), s->inv);
}

/* tdm_softmax replaces x[0..n) by its softmax. */
TDM_INLINE void tdm_softmax(float *x, int n) {
	tdm_smx st = tdm_softmax_stats(x, n);
	for (int j = 0; j < n; j++) x[j] = tdm_softmax_weight(&st, x[j]);
}

/* 6. Masked softmax, one thread per row of length L: b = (r/L)%B, i = r%L,
 * n = Lens[b]; rows i >= n are zeros, else softmax over the first n columns
 * and zeros after. */
typedef struct {
	float *S;
	const int *Lens;
	int Rows, L, B;
} TdmMaskedSoftmaxArgs;

KERNEL(tdm_masked_softmax, TdmMaskedSoftmaxArgs) {
	long long r = TDM_GID();
	if (r >= a.Rows) return;
	long long b = (r / a.L) % a.B, i = r % a.L;
	int n = a.Lens[b];
	if (n > a.L) n = a.L;
	float *s = a.S + r * a.L;
	if (i >= n) n = 0;
	if (n > 0) tdm_softmax(s, n);
	for (int j = n; j < a.L; j++) s[j] = 0.0f;
}

/* 7. Y = LayerNorm(Y + X) per row of D, in float64 as the CPU engine. */
typedef struct {
	float *Y;
	const float *X, *G, *Bias;
	int Rows, D;
	float Eps;
} TdmAddLayerNormArgs;

KERNEL(tdm_add_layer_norm, TdmAddLayerNormArgs) {
	long long r = TDM_GID();
	if (r >= a.Rows) return;
	float *y = a.Y + r * a.D;
	const float *x = a.X + r * a.D;
	double s = 0;
	for (int j = 0; j < a.D; j++) {
		y[j] = y[j] + x[j];
		s += (double)y[j];
	}
	double fd = (double)a.D;
	double mean = s / fd;
	double ss = 0;
	for (int j = 0; j < a.D; j++) {
		double c = (double)y[j] - mean;
		ss += TDM_DMUL(c, c);
	}
	double rstd = 0, v = ss / fd + (double)a.Eps;
	if (v != 0) rstd = 1 / TDM_SQRT(v);
	for (int j = 0; j < a.D; j++) {
		double t = TDM_DMUL(TDM_DMUL((double)y[j] - mean, rstd), (double)a.G[j]);
		y[j] = (float)(t + (double)a.Bias[j]);
	}
}

/* 8. Sequence summary, one thread per (b, k): S[b*Lds+j*D+k] is the first
 * min(n, Short) tokens then zeros up to Short, Pooled[b*D+k] the max over the
 * first n tokens (0 when n = 0). */
typedef struct {
	float *S, *Pooled;
	const float *X;
	const int *Lens;
	int B, L, D, Short, Lds;
} TdmSeqSummaryArgs;

KERNEL(tdm_seq_summary, TdmSeqSummaryArgs) {
	long long i = TDM_GID();
	if (i >= (long long)a.B * a.D) return;
	long long k = i % a.D, b = i / a.D;
	int n = a.Lens[b];
	if (n > a.L) n = a.L;
	if (n < 0) n = 0;
	const float *x = a.X + b * a.L * a.D + k;
	for (int j = 0; j < a.Short; j++)
		a.S[b * a.Lds + (long long)j * a.D + k] = j < n ? x[(long long)j * a.D] : 0.0f;
	float m = n > 0 ? x[0] : 0.0f; /* Go's max: a NaN sticks */
	for (int j = 1; j < n; j++) m = tdm_maxf(m, x[(long long)j * a.D]);
	a.Pooled[b * a.D + k] = m;
}

/* 9. DCNv2 cross combine: H = (float)(X0*H) + X, the product rounded first. */
typedef struct {
	float *H;
	const float *X0, *X;
	int Rows, D, Ldh, Ld0, Ldx;
} TdmCrossCombineArgs;

KERNEL(tdm_cross_combine, TdmCrossCombineArgs) {
	long long i = TDM_GID();
	if (i >= (long long)a.Rows * a.D) return;
	long long k = i % a.D, r = i / a.D;
	float *h = a.H + r * a.Ldh + k;
	*h = TDM_FMUL(a.X0[r * a.Ld0 + k], *h) + a.X[r * a.Ldx + k];
}

/* 10. MMoE combine: a = softmax(Logits[r*NE..]), H[r*Ldh+c] = sum_i
 * a_i*Experts[i*ES+r*Lde+c] from 0 in expert order, products rounded. */
typedef struct {
	float *H;
	const float *Logits, *Experts;
	int Rows, NE, W, Ldh, Lde, ES;
} TdmMMoECombineArgs;

KERNEL(tdm_mmoe_combine, TdmMMoECombineArgs) {
	long long i = TDM_GID();
	if (a.NE <= 0 || i >= (long long)a.Rows * a.W) return;
	long long c = i % a.W, r = i / a.W;
	const float *l = a.Logits + r * a.NE;
	tdm_smx st = tdm_softmax_stats(l, a.NE);
	float h = 0.0f;
	for (int e = 0; e < a.NE; e++)
		h = h + TDM_FMUL(tdm_softmax_weight(&st, l[e]), a.Experts[(long long)e * a.ES + r * a.Lde + c]);
	a.H[r * a.Ldh + c] = h;
}

/* 11. bfloat16 round-to-nearest-even with integer operations, NaN quieted. */
typedef struct {
	tdm_u16 *Dst;
	const float *Src;
	int Rows, Cols, Ldd, Lds;
} TdmToBF16Args;

KERNEL(tdm_to_bf16, TdmToBF16Args) {
	long long i = TDM_GID();
	if (i >= (long long)a.Rows * a.Cols) return;
	long long c = i % a.Cols, r = i / a.Cols;
	tdm_u32 u = tdm_f2u(a.Src[r * a.Lds + c]);
	tdm_u16 o;
	if ((u & 0x7fffffffu) > 0x7f800000u) {
		o = (tdm_u16)((u >> 16) | 0x0040u);
	} else {
		u += 0x7fffu + ((u >> 16) & 1u);
		o = (tdm_u16)(u >> 16);
	}
	a.Dst[r * a.Ldd + c] = o;
}

/* 12. Out[i] = sum_k U[Ctx[i]*Ldu+k]*Ads[IDs[i]*Lda+k] + Beta. */
typedef struct {
	float *Out;
	const float *U, *Ads;
	const int *IDs, *Ctx;
	int N, D, Ldu, Lda;
	float Beta;
} TdmRowDotArgs;

KERNEL(tdm_row_dot, TdmRowDotArgs) {
	long long i = TDM_GID();
	if (i >= a.N) return;
	const float *u = a.U + (long long)a.Ctx[i] * a.Ldu;
	const float *v = a.Ads + (long long)a.IDs[i] * a.Lda;
	float s = 0.0f;
	for (int k = 0; k < a.D; k++) s = s + TDM_FMUL(u[k], v[k]);
	a.Out[i] = s + a.Beta;
}

/* 13. Eligibility bitmask, one thread per (query, word): bit j of
 * Mask[q*Ldm+w] is set iff id = 32w+j < N is active, on the query's surface,
 * of an allowed product and bids at least the query's minimum. */
typedef struct {
	tdm_u32 *Mask;
	const tdm_u8 *Active, *Surfaces, *Product;
	const float *Bid;
	const tdm_u32 *SurfaceBit;
	const tdm_u64 *Products;
	const float *MinBid;
	int Queries, N, Ldm;
} TdmEligibleArgs;

KERNEL(tdm_eligible, TdmEligibleArgs) {
	long long i = TDM_GID();
	if (i >= (long long)a.Queries * a.Ldm) return;
	long long w = i % a.Ldm, q = i / a.Ldm;
	tdm_u32 sb = a.SurfaceBit[q];
	tdm_u64 prods = a.Products[q];
	float minBid = a.MinBid[q];
	tdm_u32 m = 0;
	for (int j = 0; j < 32; j++) {
		long long id = w * 32 + j;
		if (id >= a.N) break;
		if (a.Active[id] != 0 && (a.Surfaces[id] & sb) != 0 &&
		    a.Product[id] < 64 && ((prods >> a.Product[id]) & 1) != 0 && a.Bid[id] >= minBid)
			m |= 1u << j;
	}
	a.Mask[i] = m;
}

/* 14. Top-K per (query, chunk): the best K of the chunk's candidates by value
 * descending then id ascending, skipping negative ids, NaN values and ids
 * masked out; a min-heap in the output slots, heap-sorted at the end; unfilled
 * slots are (-inf, -1). Idx and Mask may be 0 (ids are positions; no mask). */
typedef struct {
	float *OutVal;
	int *OutIdx;
	const float *Val;
	const int *Idx;
	const tdm_u32 *Mask;
	int Queries, N, Ldv, Ldm, Chunk, K, Ldo;
} TdmTopKArgs;

/* tdm_worse reports whether (va, ia) ranks below (vb, ib). */
TDM_INLINE int tdm_worse(float va, int ia, float vb, int ib) {
	return va < vb || (va == vb && ia > ib);
}

TDM_INLINE void tdm_sift_down(float *hv, int *hi, int n, int p) {
	for (;;) {
		int l = 2 * p + 1, m = p;
		if (l < n && tdm_worse(hv[l], hi[l], hv[m], hi[m])) m = l;
		if (l + 1 < n && tdm_worse(hv[l + 1], hi[l + 1], hv[m], hi[m])) m = l + 1;
		if (m == p) return;
		float tv = hv[p];
		int ti = hi[p];
		hv[p] = hv[m];
		hi[p] = hi[m];
		hv[m] = tv;
		hi[m] = ti;
		p = m;
	}
}

KERNEL(tdm_topk, TdmTopKArgs) {
	long long t = TDM_GID();
	int nchunks = (a.N + a.Chunk - 1) / a.Chunk;
	if (nchunks < 1) nchunks = 1;
	if (t >= (long long)a.Queries * nchunks) return;
	long long c = t % nchunks, q = t / nchunks;
	float *hv = a.OutVal + q * a.Ldo + c * a.K;
	int *hi = a.OutIdx + q * a.Ldo + c * a.K;
	long long p0 = c * a.Chunk, p1 = p0 + a.Chunk;
	if (p1 > a.N) p1 = a.N;
	int n = 0;
	for (long long p = p0; p < p1; p++) {
		float v = a.Val[q * a.Ldv + p];
		int id = a.Idx ? a.Idx[q * a.Ldv + p] : (int)p;
		if (id < 0 || v != v) continue;
		if (a.Mask && ((a.Mask[q * a.Ldm + (id >> 5)] >> (id & 31)) & 1u) == 0) continue;
		if (n < a.K) {
			int j = n++;
			hv[j] = v;
			hi[j] = id;
			while (j > 0) { /* sift up */
				int u = (j - 1) / 2;
				if (!tdm_worse(hv[j], hi[j], hv[u], hi[u])) break;
				float tv = hv[u];
				int ti = hi[u];
				hv[u] = hv[j];
				hi[u] = hi[j];
				hv[j] = tv;
				hi[j] = ti;
				j = u;
			}
		} else if (a.K > 0 && tdm_worse(hv[0], hi[0], v, id)) {
			hv[0] = v;
			hi[0] = id;
			tdm_sift_down(hv, hi, n, 0);
		}
	}
	for (int m = n - 1; m > 0; m--) { /* heap-sort: the worst goes last */
		float tv = hv[0];
		int ti = hi[0];
		hv[0] = hv[m];
		hi[0] = hi[m];
		hv[m] = tv;
		hi[m] = ti;
		tdm_sift_down(hv, hi, m, 0);
	}
	for (int j = n; j < a.K; j++) {
		hv[j] = TDM_NEG_INF;
		hi[j] = -1;
	}
}
