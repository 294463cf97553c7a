// Package gemm multiplies activations by a weight matrix packed once:
// C = A·Wᵀ (+ bias, then optionally ReLU) in float32, the product of a
// Linear layer whose weight W is stored [out, in] = [n, k] row-major.
//
// # Use
//
// [Pack] (or [PackBF16]) copies W once, at model load, into the layout the
// kernel reads. [Packed.Mul] then takes any number of rows m of A per call;
// each goroutine passes its own [Buf], which grows to the largest call and
// is reused, so that steady-state calls allocate nothing. Mul is
// single-threaded: callers split the rows across goroutines themselves. A
// Packed is read-only and may be shared. [MulRef] computes the same result
// straightforwardly and serves as the reference in tests.
//
// # Layout
//
// The micro-kernel computes a tile of 6 rows of C by 16 columns in twelve
// 8-lane AVX2 registers. W is cut into panels of 16 of its rows (16 columns
// of C); a panel is stored k-major, the 16 values of one k step side by
// side, so that a k step is two vector loads. The last panel is padded with
// zero rows. In the bfloat16 variant a k step is 16 values of 16 bits in
// one 32-byte load, paired so that one shift and one mask widen them
// (exactly) to two float32 vectors; the panels take half the memory and
// the kernel runs at the same speed.
//
// For each k step the kernel broadcasts the 6 values of A in turn and
// issues 12 fused multiply-adds against the panel's two vectors: 12
// independent accumulator chains keep both FMA pipes of a core busy
// through the 4-cycle FMA latency, with 8 loads per 12 FMAs.
//
// # Blocking
//
// Mul walks W in column blocks (about 512 KiB of W each, one block for
// every layer of ordinary size), then k in blocks of at most 384, then A
// in blocks of 96 rows. Each block of rows of A is first copied into the
// Buf for the current k block, at a row stride that is never a multiple of
// 1 KiB (rows a power-of-two apart make the six broadcasts of a k step hit
// the same L1 banks and slow the kernel by 15%, much more for larger
// strides); rows past m are zero, so that edge rows go through the same
// kernel. Then for each W panel (a k-block micro-panel of 24 KiB, in L1)
// the kernel runs over the 16 tiles of the packed rows (150 KiB, in L2).
// Edge columns are the zero-padded panel; an edge tile of C (fewer than 6
// rows or 16 columns) is computed in a 6×16 scratch tile and only its
// valid part is copied out, so Mul writes nothing outside the m×N outputs.
// On the AMD EPYC (Zen 3) core it was tuned on, Mul reaches 85–95% of the
// core's FMA peak from a few dozen rows up (see bench_test.go); a single
// row runs at a sixth of that, the other five rows of its tile being
// padding.
//
// # Bit-identical rows
//
// Every output is computed by the same operations whatever m is, wherever
// its row falls in a tile or block, and whichever tile path computed it: an
// accumulator starting at +0, one single-rounding fused multiply-add per k
// in increasing order of k, then one addition of the bias, then ReLU as
// "if 0 > x { x = 0 }" (a NaN and a −0 pass through). Between k blocks the
// accumulator is stored to C and loaded back, which is exact, so the k
// blocking does not change results either. A row's result is therefore
// bit-identical when computed alone, in any batch, at any position; the
// tests check this.
//
// # Assembly and pure Go
//
// On amd64 the AVX2+FMA kernels in gemm_amd64.s are used when the CPU has
// both (checked at start-up with golang.org/x/sys/cpu). Elsewhere, on older
// CPUs, and in builds with the noasm tag (go build -tags noasm), pure-Go
// kernels with the same layout run instead, some 50 times slower. Go has
// no float32 FMA, so the Go kernels emulate one exactly: the product of two
// float32 values is exact in float64, the sum is rounded once to float64,
// and in the rare case where that rounding lands on a float32 rounding
// boundary it is redone as rounding to odd, after which rounding to
// float32 is correct. The Go kernels, MulRef and the assembly therefore
// agree bit for bit, not only within a tolerance.
package gemm
