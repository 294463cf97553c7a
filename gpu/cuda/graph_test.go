package cuda_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/tandemml/tandem/gpu/cuda"
)

// replayed lists the replayed operations logged since the last reset.
func (e *env) replayed() []string {
	var out []string
	for _, line := range strings.Split(e.sl.Log(), "\n") {
		if rest, ok := strings.CutPrefix(line, "replay "); ok {
			out = append(out, strings.Fields(rest)[0])
		}
	}
	return out
}

func TestGraphCaptureAndReplay(t *testing.T) {
	e := setup(t)
	d := e.d
	const n = 8
	m, err := d.ModuleLoadData([]byte("\x7fELF"))
	e.must(err)
	defer func() { e.must(d.ModuleUnload(m)) }()
	f, err := d.ModuleGetFunction(m, "tdm_test_axpy")
	e.must(err)
	l, err := d.NewLaunch(24)
	e.must(err)
	defer func() { e.must(d.FreeLaunch(l)) }()
	h := e.blas()

	x, y := e.alloc(4*n), e.alloc(4*n)
	out := e.alloc(4 * n)
	in := e.pinned(4 * n)
	res := e.pinned(4 * n)
	xs := unsafe.Slice((*float32)(in), n)
	for i := range xs {
		xs[i] = float32(i + 1)
	}
	one, zero := e.scalar(1), e.scalar(0)

	// Captured: y = 1 (memset), x = in (H2D), y = 2x + y (kernel),
	// out(n×1) = y(n×1)·x[0](1×1) with x[0] = 1 (GEMM on the handle's
	// stream), res = out (D2H).
	e.must(d.StreamBeginCapture(e.s))
	e.wantArgs("cuStreamBeginCapture_v2", map[string]string{"hStream": hex(uintptr(e.s)), "mode": "1"})
	e.must(d.MemsetD32Async(y, 0x3f800000, n, e.s)) // 1.0f
	e.must(d.MemcpyHtoDAsync(x, in, 4*n, e.s))
	writeAxpy(l, x, y, 2, n)
	e.must(d.LaunchKernel(f, [3]uint32{2, 1, 1}, [3]uint32{4, 1, 1}, 0, e.s, l))
	e.must(e.api.BLAS.RowMajorGemm(h, false, false, n, 1, 1, one, y, cuda.R32F, 1, x, cuda.R32F, 1, zero, out, cuda.R32F, 1, cuda.Compute32FPedantic))
	e.must(d.MemcpyDtoHAsync(res, out, 4*n, e.s))
	g, err := d.StreamEndCapture(e.s)
	e.must(err)

	// Nothing ran during capture.
	if got := bytesF32(e.downloadOn(y, 4*n)); slices.ContainsFunc(got, func(v float32) bool { return v != 0 }) {
		t.Fatalf("y = %v before the graph ran, want zeros", got)
	}
	if r := unsafe.Slice((*float32)(res), n); slices.ContainsFunc(r, func(v float32) bool { return v != 0 }) {
		t.Fatalf("res = %v before the graph ran", r)
	}

	exec, err := d.GraphInstantiate(g)
	e.must(err)
	// Changing the parameter block after capture does not change the replay.
	writeAxpy(l, y, x, 100, 1)
	e.sl.Reset()
	e.must(d.GraphLaunch(exec, e.s))
	e.must(d.StreamSynchronize(e.s))
	if got, want := e.replayed(), []string{"memsetD32", "memcpyHtoD", "launch", "gemm", "memcpyDtoH"}; !slices.Equal(got, want) {
		t.Errorf("replayed %v, want %v", got, want)
	}
	r := unsafe.Slice((*float32)(res), n)
	for i := range r {
		if want := 2*float32(i+1) + 1; r[i] != want {
			t.Fatalf("res[%d] = %v after one replay, want %v (res %v)", i, r[i], want, r)
		}
	}
	// A second replay starts again from the memset.
	clear(r)
	e.must(d.GraphLaunch(exec, e.s))
	if r[n-1] != 2*n+1 {
		t.Errorf("res[%d] = %v after the second replay, want %v", n-1, r[n-1], 2*n+1)
	}
	e.must(d.GraphExecDestroy(exec))
	e.must(d.GraphDestroy(g))
	for _, p := range []cuda.Ptr{x, y, out} {
		e.must(d.MemFree(p))
	}
}

// downloadOn reads device memory on a second, non-capturing stream.
func (e *env) downloadOn(p cuda.Ptr, n int) []byte {
	e.t.Helper()
	s, err := e.d.StreamCreate()
	e.must(err)
	defer func() { e.must(e.d.StreamDestroy(s)) }()
	h := e.pinned(n)
	e.must(e.d.MemcpyDtoHAsync(h, p, uint64(n), s))
	e.must(e.d.StreamSynchronize(s))
	return append([]byte(nil), unsafe.Slice((*byte)(h), n)...)
}

func TestStalePointerInGraph(t *testing.T) {
	e := setup(t)
	d := e.d
	m, err := d.ModuleLoadData([]byte("\x7fELF"))
	e.must(err)
	defer func() { e.must(d.ModuleUnload(m)) }()
	f, err := d.ModuleGetFunction(m, "tdm_test_axpy")
	e.must(err)
	l, err := d.NewLaunch(24)
	e.must(err)
	defer func() { e.must(d.FreeLaunch(l)) }()
	x, y := e.alloc(64), e.alloc(64)
	live := e.sl.Live()

	e.must(d.StreamBeginCapture(e.s))
	writeAxpy(l, x, y, 1, 16)
	e.must(d.LaunchKernel(f, [3]uint32{1, 1, 1}, [3]uint32{16, 1, 1}, 0, e.s, l))
	g, err := d.StreamEndCapture(e.s)
	e.must(err)
	exec, err := d.GraphInstantiate(g)
	e.must(err)
	e.must(d.GraphLaunch(exec, e.s))
	if s := e.sl.Stale(); s != 0 {
		t.Fatalf("Stale() = %d with every buffer live", s)
	}

	e.must(d.MemFree(x))
	if got := e.sl.Live(); got != live-1 {
		t.Errorf("Live() = %d after a free, want %d", got, live-1)
	}
	err = d.GraphLaunch(exec, e.s)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Code != cuda.ErrIllegalAddress || ce.Name != "CUDA_ERROR_ILLEGAL_ADDRESS" {
		t.Fatalf("replay with a freed buffer: %v, want CUDA_ERROR_ILLEGAL_ADDRESS", err)
	}
	if s := e.sl.Stale(); s != 1 {
		t.Errorf("Stale() = %d, want 1", s)
	}
	e.must(d.GraphExecDestroy(exec))
	e.must(d.GraphDestroy(g))
	e.must(d.MemFree(y))
}
