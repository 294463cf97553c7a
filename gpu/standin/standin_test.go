package standin_test

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/standin"
)

func TestBuildIsCachedPerSourceSet(t *testing.T) {
	a := standin.Build(t)
	if b := standin.Build(t); a != b {
		t.Errorf("two builds of the same sources: %s and %s", a, b)
	}
	c := standin.Build(t, "testdata/axpy.c")
	if c == a {
		t.Errorf("the build with axpy.c reused %s", a)
	}
	if _, err := os.Stat(c); err != nil {
		t.Fatal(err)
	}
}

func TestLogLiveAndReset(t *testing.T) {
	lib := standin.Build(t)
	api, err := cuda.Load(standin.Paths(lib))
	if err != nil {
		t.Fatal(err)
	}
	sl, err := standin.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d := api.Driver
	if err := d.Init(); err != nil {
		t.Fatal(err)
	}
	ctx, err := d.PrimaryCtxRetain(0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.PrimaryCtxRelease(0)
	if err := d.CtxSetCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.CtxSetCurrent(0)

	sl.Reset()
	if sl.Log() != "" || sl.Stale() != 0 {
		t.Fatalf("after Reset: log %q, stale %d", sl.Log(), sl.Stale())
	}
	live := sl.Live()
	p, err := d.MemAlloc(100)
	if err != nil {
		t.Fatal(err)
	}
	if sl.Live() != live+1 {
		t.Errorf("Live() = %d after an allocation, want %d", sl.Live(), live+1)
	}
	calls := sl.Calls("cuMemAlloc_v2")
	if len(calls) != 1 || calls[0].Args["bytesize"] != "100" || !strings.HasPrefix(calls[0].Args["dptr"], "0x") {
		t.Errorf("Calls(cuMemAlloc_v2) = %+v", calls)
	}
	if err := d.MemFree(p); err != nil {
		t.Fatal(err)
	}
	if err := d.MemFree(p); err == nil {
		t.Error("a double free succeeded")
	}
	if sl.Live() != live {
		t.Errorf("Live() = %d after the free, want %d", sl.Live(), live)
	}
	var names []string
	for _, c := range sl.Calls("") {
		names = append(names, c.Name)
	}
	// The failed free looks its error up by name and description.
	want := "cuMemAlloc_v2 cuMemFree_v2 cuMemFree_v2 cuGetErrorName cuGetErrorString"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("calls logged: %s, want %s", got, want)
	}
	// A long log is copied out whole.
	for i := 0; i < 2000; i++ {
		_, _ = d.DriverVersion()
	}
	if n := len(sl.Calls("cuDriverGetVersion")); n != 2000 {
		t.Errorf("%d cuDriverGetVersion lines, want 2000", n)
	}
}

func TestNoContextOnAnotherThread(t *testing.T) {
	lib := standin.Build(t)
	api, err := cuda.Load(standin.Paths(lib))
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := api.Driver.Init(); err != nil {
		t.Fatal(err)
	}
	// This thread never made a context current.
	if _, err := api.Driver.MemAlloc(8); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_INVALID_CONTEXT") {
		t.Errorf("MemAlloc without a current context: %v, want CUDA_ERROR_INVALID_CONTEXT", err)
	}
}
