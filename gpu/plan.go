package gpu

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/tandemml/tandem/bf16"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
)

// arena is device memory freed as one: a list of allocations, each
// 256-byte aligned by the driver.
type arena struct {
	drv  *cuda.Driver
	ptrs []cuda.Ptr
}

func (a *arena) alloc(bytes int) (cuda.Ptr, error) {
	if bytes <= 0 {
		bytes = 4
	}
	// Round up so that vectorised kernels may read whole 16-byte words.
	p, err := a.drv.MemAlloc(uint64((bytes + 255) &^ 255))
	if err != nil {
		return 0, err
	}
	a.ptrs = append(a.ptrs, p)
	return p, nil
}

func (a *arena) free() error {
	var errs []error
	for _, p := range a.ptrs {
		errs = append(errs, a.drv.MemFree(p))
	}
	a.ptrs = nil
	return errors.Join(errs...)
}

// upload copies host bytes into new device memory and waits for the copy.
func (a *arena) upload(l *lane, b []byte) (cuda.Ptr, error) {
	p, err := a.alloc(len(b))
	if err != nil || len(b) == 0 {
		return p, err
	}
	if err := a.drv.MemcpyHtoDAsync(p, unsafe.Pointer(&b[0]), uint64(len(b)), l.s); err != nil {
		return 0, err
	}
	return p, a.drv.StreamSynchronize(l.s)
}

func f32bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func f64bytes(v []float64) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 8*len(v))
}

func i32bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// devLinear is a Linear's weights on the device: W [out, in] in fp32, or
// in bfloat16 when bf is set, and the fp32 bias.
type devLinear struct {
	in, out int
	w, b    cuda.Ptr
	bf      bool
}

// uploadLinear puts l on the device; big layers go to bfloat16 under BF16.
func uploadLinear(a *arena, ln *lane, l *engine.LinearWeights, big bool, p Precision) (*devLinear, error) {
	if l == nil {
		return nil, nil
	}
	if len(l.W) != l.In*l.Out || len(l.B) != l.Out {
		return nil, fmt.Errorf("gpu: linear %d×%d: %d weights, %d biases", l.Out, l.In, len(l.W), len(l.B))
	}
	d := &devLinear{in: l.In, out: l.Out, bf: big && p == BF16}
	var err error
	if d.bf {
		h := make([]uint16, len(l.W))
		bf16.Encode(h, l.W)
		var b []byte
		if len(h) > 0 {
			b = unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), 2*len(h))
		}
		d.w, err = a.upload(ln, b)
	} else {
		d.w, err = a.upload(ln, f32bytes(l.W))
	}
	if err != nil {
		return nil, err
	}
	if d.b, err = a.upload(ln, f32bytes(l.B)); err != nil {
		return nil, err
	}
	return d, nil
}

// scratch hands out a lane's device activations in call order, like the
// CPU engine's arena: programs are built largest bucket first, so the k-th
// buffer of every bucket's program is the same allocation.
type scratch struct {
	a    arena
	bufs []cuda.Ptr
	size []int
	i    int
}

func (s *scratch) reset() { s.i = 0 }

// get returns a buffer of at least bytes.
func (s *scratch) get(bytes int) (cuda.Ptr, error) {
	if s.i == len(s.bufs) {
		p, err := s.a.alloc(bytes)
		if err != nil {
			return 0, err
		}
		s.bufs, s.size = append(s.bufs, p), append(s.size, bytes)
	}
	if s.size[s.i] < bytes {
		return 0, fmt.Errorf("gpu: scratch buffer %d holds %d bytes, a smaller bucket wants %d", s.i, s.size[s.i], bytes)
	}
	p := s.bufs[s.i]
	s.i++
	return p, nil
}

// step is one operation of a program, issued on the lane's stream. out,
// when set, names the activation it writes (rows × cols fp32, row stride
// ld) for per-layer comparisons.
type step struct {
	name string
	run  func() error
	out  cuda.Ptr
	rows int
	cols int
	ld   int
}

// prog is the list of steps of one (model, lane, bucket), built once.
type prog struct {
	l     *lane
	sc    *scratch
	p     Precision
	steps []step
	descs []*cuda.LinearDesc
	err   error
	graph cuda.GraphExec
}

func (p *prog) fail(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

// floats returns a scratch buffer of n float32s.
func (p *prog) floats(n int) cuda.Ptr {
	b, err := p.sc.get(4 * n)
	p.fail(err)
	return b
}

func (p *prog) add(s step) { p.steps = append(p.steps, s) }

// kernel adds a kernel launch writing rows × cols (row stride ld) at out.
func (p *prog) kernel(name string, k kernels.Kernel, out cuda.Ptr, rows, cols, ld int) {
	l := p.l
	p.add(step{name: name, run: func() error { return l.launch(k) }, out: out, rows: rows, cols: cols, ld: ld})
}

// linear adds y(rows × l.out, ldy) = x(rows × l.in, ldx)·Wᵀ + b (then ReLU).
// A bfloat16 layer first converts its input on the device.
func (p *prog) linear(name string, l *devLinear, rows int, x cuda.Ptr, ldx int, y cuda.Ptr, ldy int, relu bool) {
	if p.err != nil || rows == 0 {
		return
	}
	lt := p.l.d.api.Lt
	xType, compute := cuda.R32F, cuda.Compute32FPedantic
	switch {
	case l.bf:
		xType, compute = cuda.R16BF, cuda.Compute32F
	case p.p == TF32:
		compute = cuda.Compute32FFastTF32
	}
	if l.bf {
		bx, err := p.sc.get(2 * rows * l.in)
		p.fail(err)
		p.kernel(name+".bf16", &kernels.ToBF16{Dst: uint64(bx), Src: uint64(x), Rows: int32(rows), Cols: int32(l.in), Ldd: int32(l.in), Lds: int32(ldx)}, 0, 0, 0, 0)
		x, ldx = bx, l.in
	}
	wType := cuda.R32F
	if l.bf {
		wType = cuda.R16BF
	}
	d, err := lt.NewLinear(rows, l.in, l.out, ldx, ldy, wType, xType, compute, l.b, relu)
	if err != nil {
		p.fail(fmt.Errorf("gpu: %s: %w", name, err))
		return
	}
	p.descs = append(p.descs, d)
	ln := p.l
	w := l.w
	p.add(step{name: name, out: y, rows: rows, cols: l.out, ld: ldy, run: func() error {
		return lt.RunLinear(ln.lt, d, ln.konstPtr(konstOne), ln.konstPtr(konstZero), w, x, y, ln.ws, ln.wsN, ln.s)
	}})
}

// mlp adds ReLU layers over x and returns the last output and its width.
func (p *prog) mlp(name string, ls []*devLinear, rows int, x cuda.Ptr, ldx int) (cuda.Ptr, int) {
	for i, l := range ls {
		y := p.floats(rows * l.out)
		p.linear(fmt.Sprintf("%s.%d", name, i), l, rows, x, ldx, y, l.out, true)
		x, ldx = y, l.out
	}
	return x, ldx
}

// attnCompute is the compute type of the attention GEMMs: fp32 except in
// TF32 mode (attention stays fp32 under BF16, as on the CPU).
func (p *prog) attnCompute() int {
	if p.p == TF32 {
		return cuda.Compute32FFastTF32
	}
	return cuda.Compute32FPedantic
}

// h2d and d2h add copies between pinned host memory and the device.
func (p *prog) h2d(name string, dst cuda.Ptr, src unsafe.Pointer, bytes int) {
	l := p.l
	p.add(step{name: name, run: func() error {
		return l.d.drv.MemcpyHtoDAsync(dst, src, uint64(bytes), l.s)
	}})
}

func (p *prog) d2h(name string, dst unsafe.Pointer, src cuda.Ptr, bytes int) {
	l := p.l
	p.add(step{name: name, run: func() error {
		return l.d.drv.MemcpyDtoHAsync(dst, src, uint64(bytes), l.s)
	}})
}

// issue runs every step on the stream (no graph).
func (p *prog) issue() error {
	for _, s := range p.steps {
		if err := s.run(); err != nil {
			return fmt.Errorf("gpu: step %s: %w", s.name, err)
		}
	}
	return nil
}

// capture records the program into a CUDA graph.
func (p *prog) capture() error {
	drv := p.l.d.drv
	if err := drv.StreamBeginCapture(p.l.s); err != nil {
		return fmt.Errorf("gpu: begin capture: %w", err)
	}
	ierr := p.issue()
	g, err := drv.StreamEndCapture(p.l.s)
	if ierr != nil {
		if err == nil {
			_ = drv.GraphDestroy(g)
		}
		return ierr
	}
	if err != nil {
		return fmt.Errorf("gpu: end capture: %w", err)
	}
	exec, err := drv.GraphInstantiate(g)
	_ = drv.GraphDestroy(g)
	if err != nil {
		return fmt.Errorf("gpu: instantiate graph: %w", err)
	}
	p.graph = exec
	return nil
}

// run executes the program once (its graph, or its steps) and waits.
func (p *prog) run() error {
	if err := p.enqueue(); err != nil {
		return err
	}
	if err := p.l.d.drv.StreamSynchronize(p.l.s); err != nil {
		return fmt.Errorf("gpu: sync: %w", err)
	}
	return nil
}

// enqueue puts the program on the lane's stream without waiting.
func (p *prog) enqueue() error {
	if p.graph != 0 {
		if err := p.l.d.drv.GraphLaunch(p.graph, p.l.s); err != nil {
			return fmt.Errorf("gpu: graph launch: %w", err)
		}
		return nil
	}
	return p.issue()
}

// trace runs the steps one by one and hands each named output to f.
func (p *prog) trace(f func(name string, rows, cols int, v []float32)) error {
	drv := p.l.d.drv
	for _, s := range p.steps {
		if err := s.run(); err != nil {
			return fmt.Errorf("gpu: step %s: %w", s.name, err)
		}
		if s.out == 0 || s.rows == 0 {
			continue
		}
		v := make([]float32, (s.rows-1)*s.ld+s.cols)
		if err := drv.MemcpyDtoHAsync(unsafe.Pointer(&v[0]), s.out, uint64(4*len(v)), p.l.s); err != nil {
			return err
		}
		if err := drv.StreamSynchronize(p.l.s); err != nil {
			return fmt.Errorf("gpu: step %s: %w", s.name, err)
		}
		out := make([]float32, s.rows*s.cols)
		for r := range s.rows {
			copy(out[r*s.cols:(r+1)*s.cols], v[r*s.ld:])
		}
		f(s.name, s.rows, s.cols, out)
	}
	return drv.StreamSynchronize(p.l.s)
}

// free releases the program's graph and descriptors (not its buffers).
func (p *prog) free() error {
	var errs []error
	if p.graph != 0 {
		errs = append(errs, p.l.d.drv.GraphExecDestroy(p.graph))
		p.graph = 0
	}
	for _, d := range p.descs {
		errs = append(errs, p.l.d.api.Lt.FreeLinear(d))
	}
	p.descs = nil
	return errors.Join(errs...)
}
