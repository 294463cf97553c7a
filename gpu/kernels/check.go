package kernels

import (
	"fmt"
	"math"
	"unsafe"
)

// Mem is a place kernels run: the host emulator in tests, a real device in
// gpucheck. Addresses are device addresses (host addresses on the
// emulator).
type Mem interface {
	Alloc(bytes int) (uint64, error) // zeroed
	Write(dst uint64, b []byte) error
	Read(b []byte, src uint64) error
	Launch(k Kernel) error
	Sync() error
}

// Result is the outcome of one kernel case: the largest absolute and
// relative (to max(|want|, 1)) difference from the Go reference over every
// output, the tolerance, and whether it passed; Err says why not (a Mem
// error or the first mismatch).
type Result struct {
	Kernel, Case   string
	MaxAbs, MaxRel float64
	Tol            float64
	OK             bool
	Err            string
}

// Tolerances, relative to max(|want|, 1). The kernels compute the CPU
// engine's operations in its order, each correctly rounded (products are
// never fused, exp is kernel.Exp32's polynomial, not a library call), so
// the host emulation matches the references bit for bit and so should a
// device; the tests require MaxAbs = 0 on the host.
const (
	// TolExact is for data movement, integer work and single IEEE
	// operations (gathers, copies, ReLU, max-pool, x0·h + x, bf16, masks,
	// top-k values and ids): any IEEE device gives the same bits, and a
	// difference in the sign of a zero already fails.
	TolExact = 0
	// TolRounded is for kernels that chain float64 divisions and square
	// roots or long float32 sums (BN, softmax, layer norm, MMoE, row
	// dots): 4 float32 ulps, so that a device or NVRTC build that rounds a
	// division or square root differently (--prec-div=false,
	// --use_fast_math) shows as a number while a wrong kernel, off by far
	// more, still fails.
	TolRounded = 4.0 / (1 << 24)
)

// Check runs every kernel's cases on m and compares each output with the
// Go reference: several sizes and strides, empty sequences, full ones,
// OOV rows, NaN and infinite inputs, ties and masks in TopK, K larger than
// the candidates, and a multi-stage TopK reduction.
func Check(m Mem) []Result {
	var out []Result
	for _, c := range checkCases() {
		s := &session{m: m, r: Result{Kernel: c.kernel, Case: c.name, Tol: c.tol}}
		c.run(s)
		if s.err != nil {
			s.r.Err = s.err.Error()
		}
		s.r.OK = s.r.Err == ""
		out = append(out, s.r)
	}
	return out
}

// checkCase is one case: run uploads inputs, launches and compares.
type checkCase struct {
	kernel, name string
	tol          float64
	run          func(s *session)
}

// session is one case in progress: Mem calls stop at the first error, and
// comparisons accumulate into the result.
type session struct {
	m   Mem
	err error
	r   Result
}

func (s *session) fail(err error) {
	if s.err == nil && err != nil {
		s.err = err
	}
}

func (s *session) launch(k Kernel) {
	if s.err == nil {
		s.fail(s.m.Launch(k))
	}
	if s.err == nil {
		s.fail(s.m.Sync())
	}
}

func byteView[T any](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*int(unsafe.Sizeof(z)))
}

// put allocates device memory for v (at least 16 bytes, so that an empty
// input still has an address) and writes v into it.
func put[T any](s *session, v []T) uint64 {
	if s.err != nil {
		return 0
	}
	b := byteView(v)
	p, err := s.m.Alloc(max(len(b), 16))
	s.fail(err)
	if err == nil && len(b) > 0 {
		s.fail(s.m.Write(p, b))
	}
	return p
}

// get reads n values of type T from device address p.
func get[T any](s *session, p uint64, n int) []T {
	v := make([]T, n)
	if s.err == nil && n > 0 {
		s.fail(s.m.Read(byteView(v), p))
	}
	return v
}

// mismatch records the first mismatch of an output.
func (s *session) mismatch(what string, i int, got, want any) {
	if s.r.Err == "" {
		s.r.Err = fmt.Sprintf("%s[%d] = %v, want %v", what, i, got, want)
	}
}

// f32 compares a float32 output within the case's tolerance: NaN matches
// NaN (any payload), infinities must be equal, and with TolExact the bits
// must be.
func (s *session) f32(what string, got, want []float32) {
	if s.err != nil {
		return
	}
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) && math.IsNaN(w) {
			continue
		}
		d := math.Abs(g - w)
		if math.IsNaN(d) || math.IsInf(d, 0) {
			if g != w {
				d = math.Inf(1)
			} else {
				d = 0
			}
		}
		rel := d / math.Max(1, math.Abs(w))
		s.r.MaxAbs = math.Max(s.r.MaxAbs, d)
		s.r.MaxRel = math.Max(s.r.MaxRel, rel)
		bad := rel > s.r.Tol
		if s.r.Tol == 0 && math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			bad = true
		}
		if bad {
			s.mismatch(what, i, got[i], want[i])
		}
	}
}

// exact compares an integer output.
func exact[T int32 | uint16 | uint32](s *session, what string, got, want []T) {
	if s.err != nil {
		return
	}
	for i := range want {
		if got[i] != want[i] {
			s.r.MaxAbs = math.Max(s.r.MaxAbs, math.Abs(float64(got[i])-float64(want[i])))
			s.r.MaxRel = math.Inf(1)
			s.mismatch(what, i, got[i], want[i])
		}
	}
}
