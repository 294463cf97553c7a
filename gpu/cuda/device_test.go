package cuda_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/standin"
)

// axpySource is tdm_test_axpy for NVRTC, with the parameter struct of
// the stand-in's testdata/axpy.c.
const axpySource = `
struct axpy_params {
	unsigned long long x, y;
	float a;
	int n;
};

extern "C" __global__ void tdm_test_axpy(axpy_params p) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < p.n) {
		float *y = (float *)p.y;
		const float *x = (const float *)p.x;
		y[i] = p.a * x[i] + y[i];
	}
}
`

// TestEndToEnd runs one pass over the bindings a lane uses: NVRTC, a
// kernel launch, cuBLAS, cuBLASLt and a captured graph. It runs on the
// stand-in, and with TANDEM_GPU_TEST=1 on the libraries that
// TANDEM_LIB* and discovery find, i.e. on a real GPU.
func TestEndToEnd(t *testing.T) {
	var api *cuda.API
	var err error
	tol := 1e-5
	if os.Getenv("TANDEM_GPU_TEST") == "1" {
		// The device sums in its own order.
		tol = 1e-4
		api, err = cuda.Load(cuda.PathsFromEnv())
	} else {
		api, err = cuda.Load(standin.Paths(standinLib(t)))
	}
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, api)
	d := e.d
	name, err := d.DeviceName(e.dev)
	e.must(err)
	major, err := d.DeviceAttribute(cuda.AttrComputeCapabilityMajor, e.dev)
	e.must(err)
	minor, err := d.DeviceAttribute(cuda.AttrComputeCapabilityMinor, e.dev)
	e.must(err)
	t.Logf("device %q, compute capability %d.%d, loaded %v", name, major, minor, api.Loaded)
	if api.NVRTC == nil {
		t.Skipf("no NVRTC: %v", api.NVRTCErr)
	}

	cubin, log, err := api.NVRTC.Compile(axpySource, "axpy.cu", []string{fmt.Sprintf("--gpu-architecture=sm_%d%d", major, minor)})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	m, err := d.ModuleLoadData(cubin)
	e.must(err)
	defer func() { e.must(d.ModuleUnload(m)) }()
	f, err := d.ModuleGetFunction(m, "tdm_test_axpy")
	e.must(err)
	l, err := d.NewLaunch(24)
	e.must(err)
	defer func() { e.must(d.FreeLaunch(l)) }()

	bl, lt := api.BLAS, api.Lt
	h, err := bl.Create()
	e.must(err)
	defer func() { e.must(bl.Destroy(h)) }()
	e.must(bl.SetStream(h, e.s))
	e.must(bl.SetMathMode(h, cuda.MathPedantic))
	const wsBytes = 4 << 20
	ws := e.alloc(wsBytes)
	e.must(bl.SetWorkspace(h, ws, wsBytes))
	lh, err := lt.Create()
	e.must(err)
	defer func() { e.must(lt.Destroy(lh)) }()

	// Inputs: x = 1..n; a row-major GEMM and a Linear over fixed data.
	r := rand.New(rand.NewPCG(7, 8))
	const n, rows, in, out = 300, 7, 33, 17
	in0 := e.pinned(4 * n)
	xs := unsafe.Slice((*float32)(in0), n)
	for i := range xs {
		xs[i] = float32(i + 1)
	}
	x, y := e.alloc(4*n), e.alloc(4*n)
	A, B := randMat(r, rows*in, false), randMat(r, out*in, false) // X and W
	bias := randMat(r, out, false)
	dA, dB, dBias := e.upload(f32bytes(A)), e.upload(f32bytes(B)), e.upload(f32bytes(bias))
	gemmOut, linOut := e.alloc(4*rows*out), e.alloc(4*rows*out)
	res := e.pinned(4 * n)
	one, zero := e.scalar(1), e.scalar(0)
	lin, err := lt.NewLinear(rows, in, out, in, out, cuda.R32F, cuda.R32F, cuda.Compute32F, dBias, true)
	e.must(err)
	defer func() { e.must(lt.FreeLinear(lin)) }()

	issue := func() {
		e.must(d.MemsetD32Async(y, 0x3f800000, n, e.s)) // 1.0f
		e.must(d.MemcpyHtoDAsync(x, in0, 4*n, e.s))
		writeAxpy(l, x, y, 2, n)
		e.must(d.LaunchKernel(f, [3]uint32{(n + 127) / 128, 1, 1}, [3]uint32{128, 1, 1}, 0, e.s, l))
		// gemmOut(rows×out) = X(rows×in)·Wᵀ.
		e.must(bl.RowMajorGemm(h, false, true, rows, out, in, one, dA, cuda.R32F, in, dB, cuda.R32F, in, zero, gemmOut, cuda.R32F, out, cuda.Compute32FPedantic))
		e.must(lt.RunLinear(lh, lin, one, zero, dB, dA, linOut, ws, wsBytes, e.s))
		e.must(d.MemcpyDtoHAsync(res, y, 4*n, e.s))
	}
	check := func(what string) {
		t.Helper()
		e.must(d.StreamSynchronize(e.s))
		got := unsafe.Slice((*float32)(res), n)
		for i := range got {
			if want := 2*float32(i+1) + 1; got[i] != want {
				t.Fatalf("%s: axpy y[%d] = %v, want %v", what, i, got[i], want)
			}
		}
		wantG := make([]float32, rows*out)
		refGemm(false, true, rows, out, in, 1, A, in, B, in, 0, wantG, out)
		compareTol(t, what+": gemm", bytesF32(e.download(gemmOut, 4*rows*out)), wantG, tol)
		wantL := make([]float32, rows*out)
		refLinear(rows, in, out, in, out, 1, 0, B, A, bias, wantL, true)
		compareTol(t, what+": linear", bytesF32(e.download(linOut, 4*rows*out)), wantL, tol)
	}

	issue()
	check("direct")

	clear(unsafe.Slice((*float32)(res), n))
	e.must(d.MemsetD32Async(gemmOut, 0, rows*out, e.s))
	e.must(d.MemsetD32Async(linOut, 0, rows*out, e.s))
	e.must(d.StreamSynchronize(e.s))
	e.must(d.StreamBeginCapture(e.s))
	issue()
	g, err := d.StreamEndCapture(e.s)
	e.must(err)
	defer func() { e.must(d.GraphDestroy(g)) }()
	exec, err := d.GraphInstantiate(g)
	e.must(err)
	defer func() { e.must(d.GraphExecDestroy(exec)) }()
	if got := unsafe.Slice((*float32)(res), n); slices.ContainsFunc(got, func(v float32) bool { return v != 0 }) {
		t.Fatal("captured work ran before the graph was launched")
	}
	for i := range 3 {
		clear(unsafe.Slice((*float32)(res), n))
		e.must(d.GraphLaunch(exec, e.s))
		check(fmt.Sprintf("graph launch %d", i))
	}
	for _, p := range []cuda.Ptr{x, y, dA, dB, dBias, gemmOut, linOut, ws} {
		e.must(d.MemFree(p))
	}
}
