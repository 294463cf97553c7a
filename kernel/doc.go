// Package kernel holds the row kernels of the inference engine: the small
// per-row operations that sit between the matrix products.
//
//   - [Softmax] normalises one row into weights that sum to one.
//   - [LayerNorm] normalises each row of a matrix to zero mean and unit
//     variance, then applies a per-column gain and bias.
//   - [Cross] is the combine step of a DCNv2 cross layer, x0⊙h + x.
//   - [Add], [Scale] and [ReLU] are the elementwise helpers.
//   - [Gather] copies embedding rows picked by integer codes, and reports a
//     code outside the table instead of panicking or writing zeros.
//   - [Dots] and [DotsBF16] score one query vector against many stored
//     rows (float32 or bfloat16), the retrieval inner loop.
//   - [TopK] picks the indices of the k best scores without sorting them
//     all.
//
// All data is float32 and row-major. Kernels write only the cells they are
// documented to write and allocate nothing (TopK only when the output
// buffer it is given is too small).
//
// # Row independence
//
// Every kernel computes each row with one fixed sequence of floating-point
// operations, chosen by the row's width alone. A row's result therefore does
// not depend on how many rows share the call, on the row's position among
// them or on its address: calling a kernel on a batch and on each row alone
// gives the same bits.
//
// # Assembly and the pure-Go twins
//
// [Dots] and [DotsBF16] run an AVX2+FMA assembly loop on amd64 processors
// that have both extensions (detected once at start-up), and so does the
// scan of [TopK] for scores that beat the current k-th best. Everywhere
// else, and in builds with the noasm tag, pure-Go twins run instead. The
// Dots twin follows the assembly's lane structure: eight partial sums,
// column j feeding lane j mod 8, added at the end as
// ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)). The two differ only in rounding:
// the assembly fuses each multiply into its add, the twin rounds the
// product first. Both are deterministic, but they are not bit-identical to
// each other. TopK gives the same result on either path.
//
// [Softmax] has an assembly path too, taken by every row without a NaN or
// an infinite maximum (the pure-Go code handles those). It computes the
// same quantities eight entries at a time, with the same polynomial for
// e^r, but its own operations: x−m is formed exactly as a float32 sum
// s + lo (TwoSum) rather than in float64, r = (s − n·ln2hi) + (lo −
// n·ln2lo) with ln 2 split in two float32 parts and one rounding, the
// polynomial in Estrin's order with fused multiply-adds, and each
// exponential kept scaled by 2⁶⁴, a factor that cancels in the
// normalisation, so that a weight in the subnormal range is rounded once
// rather than twice. The sum is float64 in both, in eight lanes in the
// assembly. The two paths are equally accurate; they give the same bits
// for about 98% of the entries and otherwise differ by one unit in the
// last place, rarely two. The other kernels are pure Go.
package kernel
