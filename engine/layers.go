package engine

import (
	"fmt"
	"math"

	"github.com/tandemml/tandem/gemm"
	"github.com/tandemml/tandem/kernel"
)

// linear is y = x Wᵀ + b with W stored [out, in], packed once for the
// GEMM (optionally in bfloat16); w is only kept until then.
type linear struct {
	in, out int
	w, b    []float32
	p       *gemm.Packed
}

func newLinear(w, b []float32, out, in int) *linear {
	return &linear{in: in, out: out, w: w, b: b}
}

// fuse stacks layers reading the same input into one: its output columns
// are each layer's in order.
func fuse(ls ...*linear) *linear {
	f := &linear{in: ls[0].in}
	for _, l := range ls {
		f.out += l.out
		f.w = append(f.w, l.w...)
		b := l.b
		if b == nil {
			b = make([]float32, l.out)
		}
		f.b = append(f.b, b...)
	}
	return f
}

// pack prepares the layer for apply; bf16 stores the packed weights in
// bfloat16 (the big matmul blocks only: see SYSTEM.md §2 on precision).
// Unless keep is set W is dropped: apply reads only the packed copy, and
// keeping W would hold the fp32 weights twice.
func (l *linear) pack(bf16, keep bool) {
	if bf16 {
		l.p = gemm.PackBF16(l.w, l.out, l.in)
	} else {
		l.p = gemm.Pack(l.w, l.out, l.in)
	}
	if !keep {
		l.w = nil
	}
}

// packAll packs every layer: big in bfloat16 when o.BF16 is set, small
// always in fp32 (gates, logits, heads and attention stay fp32).
func packAll(o Options, big, small []*linear) {
	for _, l := range big {
		l.pack(o.BF16, o.KeepWeights)
	}
	for _, l := range small {
		l.pack(false, o.KeepWeights)
	}
}

// apply computes dst[i*ldd+j] = x[i*ldx:]·W[j] + b[j] (then ReLU) for m rows.
func (l *linear) apply(w *Worker, dst []float32, ldd int, x []float32, ldx, m int, relu bool) {
	l.p.Mul(dst, ldd, x, ldx, m, l.b, relu, &w.g)
}

// mlpApply runs a stack of Linear + ReLU layers over m rows of x, returning
// the last layer's output (m × width) from the worker's scratch.
func mlpApply(w *Worker, ls []*linear, x []float32, ldx, m int) ([]float32, int) {
	return mlpNamed(w, "", ls, x, ldx, m)
}

// mlpNamed is mlpApply tracing layer i as "<name>.<i>".
func mlpNamed(w *Worker, name string, ls []*linear, x []float32, ldx, m int) ([]float32, int) {
	for i, l := range ls {
		y := w.a.floats(m * l.out)
		l.apply(w, y, l.out, x, ldx, m, true)
		if w.trace != nil && name != "" {
			w.emit(fmt.Sprintf("%s.%d", name, i), m, l.out, l.out, y)
		}
		x, ldx = y, l.out
	}
	return x, ldx
}

// crossCombine sets h = x0 ⊙ h + x over m rows (the DCNv2 cross after its
// Linear), each with its own leading dimension.
func crossCombine(h []float32, ldh int, x0 []float32, ld0 int, x []float32, ldx, m, d int) {
	for i := 0; i < m; i++ {
		hr := h[i*ldh : i*ldh+d]
		kernel.Cross(hr, x0[i*ld0:i*ld0+d], hr, x[i*ldx:i*ldx+d])
	}
}

// bn is Resilient BatchNorm at serving: running statistics, the clamp c and
// the variance floor v_min, then the learned affine map.
type bn struct {
	mean, sd     []float64
	clamp        float64
	weight, bias []float32
}

func readBN(s *source, name string, n int) *bn {
	w := s.get(name+".weight", n)
	b := s.get(name+".bias", n)
	mean := s.get(name+".running_mean", n)
	vr := s.get(name+".running_var", n)
	cfg := s.get(name+".config", 2)
	if s.err != nil {
		return nil
	}
	out := &bn{clamp: float64(cfg[0]), weight: w, bias: b, mean: make([]float64, n), sd: make([]float64, n)}
	for i := range n {
		out.mean[i] = float64(mean[i])
		out.sd[i] = math.Sqrt(max(float64(vr[i]), float64(cfg[1])))
	}
	return out
}

// apply writes the normalised, affine-mapped values of raw[j] into dst[j],
// for j < len(mean), offsetting into the feature list by first.
func (b *bn) apply(dst, raw []float32, first int) {
	for j, x := range raw {
		k := first + j
		mu, sd := b.mean[k], b.sd[k]
		v := min(max(float64(x), mu-b.clamp*sd), mu+b.clamp*sd)
		z := min(max((v-mu)/sd, -b.clamp), b.clamp)
		if math.IsNaN(z) {
			z = 0
		}
		dst[j] = float32(z)*b.weight[k] + b.bias[k]
	}
}

// means returns the running means of features [first, first+n) as float32:
// the raw values that normalise to 0, which serving gives a feature a
// request leaves out. A nil bn (no dense features) gives zeros.
func (b *bn) means(first, n int) []float32 {
	out := make([]float32, n)
	if b == nil {
		return out
	}
	for j := range out {
		out[j] = float32(b.mean[first+j])
	}
	return out
}
