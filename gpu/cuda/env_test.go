package cuda_test

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/standin"
)

// env is a loaded stand-in with a current context and a stream, on a
// goroutine locked to its thread.
type env struct {
	t    *testing.T
	lib  string
	api  *cuda.API
	d    *cuda.Driver
	sl   *standin.Lib
	dev  int32
	s    cuda.Stream
	host []unsafe.Pointer
}

func standinLib(t *testing.T) string {
	return standin.Build(t, "../standin/testdata/axpy.c")
}

func setup(t *testing.T) *env {
	t.Helper()
	lib := standinLib(t)
	api, err := cuda.Load(standin.Paths(lib))
	if err != nil {
		t.Fatal(err)
	}
	sl, err := standin.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, api)
	e.lib, e.sl = lib, sl
	sl.Reset()
	return e
}

// newEnv makes device 0's primary context current on a locked thread and
// creates a stream, all released at cleanup.
func newEnv(t *testing.T, api *cuda.API) *env {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	e := &env{t: t, api: api, d: api.Driver}
	e.must(e.d.Init())
	var err error
	e.dev, err = e.d.Device(0)
	e.must(err)
	ctx, err := e.d.PrimaryCtxRetain(e.dev)
	e.must(err)
	e.must(e.d.CtxSetCurrent(ctx))
	e.s, err = e.d.StreamCreate()
	e.must(err)
	t.Cleanup(func() {
		for _, p := range e.host {
			e.must(e.d.MemFreeHost(p))
		}
		e.must(e.d.StreamDestroy(e.s))
		e.must(e.d.CtxSetCurrent(0))
		e.must(e.d.PrimaryCtxRelease(e.dev))
	})
	return e
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// pinned returns n bytes of pinned host memory, freed at cleanup.
func (e *env) pinned(n int) unsafe.Pointer {
	e.t.Helper()
	p, err := e.d.MemAllocHost(uint64(n))
	e.must(err)
	e.host = append(e.host, p)
	return p
}

// scalar is a float32 in pinned memory.
func (e *env) scalar(v float32) unsafe.Pointer {
	p := e.pinned(4)
	*(*float32)(p) = v
	return p
}

// alloc returns a device buffer of n bytes; the test frees it.
func (e *env) alloc(n int) cuda.Ptr {
	e.t.Helper()
	p, err := e.d.MemAlloc(uint64(n))
	e.must(err)
	return p
}

func (e *env) upload(b []byte) cuda.Ptr {
	e.t.Helper()
	p := e.alloc(len(b))
	h := e.pinned(len(b))
	copy(unsafe.Slice((*byte)(h), len(b)), b)
	e.must(e.d.MemcpyHtoDAsync(p, h, uint64(len(b)), e.s))
	e.must(e.d.StreamSynchronize(e.s))
	return p
}

func (e *env) download(p cuda.Ptr, n int) []byte {
	e.t.Helper()
	h := e.pinned(n)
	e.must(e.d.MemcpyDtoHAsync(h, p, uint64(n), e.s))
	e.must(e.d.StreamSynchronize(e.s))
	return append([]byte(nil), unsafe.Slice((*byte)(h), n)...)
}

func f32bytes(v []float32) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))...)
}

func bytesF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(b)), b)
	return out
}

// bf16bytes stores the top 16 bits of each value.
func bf16bytes(v []float32) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		u := math.Float32bits(x) >> 16
		out[2*i], out[2*i+1] = byte(u), byte(u>>8)
	}
	return out
}

// truncBF16 is x rounded toward zero to bfloat16.
func truncBF16(x float32) float32 {
	return math.Float32frombits(math.Float32bits(x) &^ 0xffff)
}

// lastCall is the log's last call of name, failing when there is none.
func (e *env) lastCall(name string) map[string]string {
	e.t.Helper()
	cs := e.sl.Calls(name)
	if len(cs) == 0 {
		e.t.Fatalf("no %s call in the log:\n%s", name, e.sl.Log())
	}
	return cs[len(cs)-1].Args
}

// wantArgs checks logged arguments.
func (e *env) wantArgs(name string, want map[string]string) {
	e.t.Helper()
	got := e.lastCall(name)
	for k, v := range want {
		if !strings.EqualFold(got[k], v) {
			e.t.Errorf("%s %s=%s, want %s", name, k, got[k], v)
		}
	}
}
