package cuda_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/tandemml/tandem/gpu/cuda"
)

func hex(v any) string { return fmt.Sprintf("%#x", v) }

func TestDeviceQueries(t *testing.T) {
	e := setup(t)
	d := e.d
	if v, err := d.DriverVersion(); err != nil || v != 13000 {
		t.Errorf("DriverVersion() = %d, %v; want 13000", v, err)
	}
	if n, err := d.DeviceCount(); err != nil || n != 1 {
		t.Errorf("DeviceCount() = %d, %v; want 1", n, err)
	}
	if name, err := d.DeviceName(e.dev); err != nil || name != "tandem stand-in" {
		t.Errorf("DeviceName = %q, %v", name, err)
	}
	e.wantArgs("cuDeviceGetName", map[string]string{"len": "256", "dev": "0"})
	for attr, want := range map[int]int{cuda.AttrComputeCapabilityMajor: 9, cuda.AttrComputeCapabilityMinor: 0, cuda.AttrMultiprocessorCount: 132} {
		if v, err := d.DeviceAttribute(attr, e.dev); err != nil || v != want {
			t.Errorf("DeviceAttribute(%d) = %d, %v; want %d", attr, v, err, want)
		}
		e.wantArgs("cuDeviceGetAttribute", map[string]string{"attrib": fmt.Sprint(attr), "dev": "0"})
	}
	if n, err := d.DeviceTotalMem(e.dev); err != nil || n != 80<<30 {
		t.Errorf("DeviceTotalMem = %d, %v", n, err)
	}
	if _, err := d.Device(3); err == nil {
		t.Error("Device(3) succeeded on a one-device stand-in")
	}
	e.wantArgs("cuDeviceGet", map[string]string{"ordinal": "3"})
	if v, err := e.api.BLAS.Version(0); err != nil || v != 130000 {
		t.Errorf("BLAS.Version = %d, %v", v, err)
	}
	if v := e.api.Lt.Version(); v != 130000 {
		t.Errorf("Lt.Version = %d", v)
	}
	if a, b, err := e.api.NVRTC.Version(); err != nil || a != 13 || b != 0 {
		t.Errorf("NVRTC.Version = %d.%d, %v", a, b, err)
	}
}

func TestErrorNamesTheCall(t *testing.T) {
	e := setup(t)
	err := e.d.MemFree(0x1234)
	var ce *cuda.Error
	if !errors.As(err, &ce) {
		t.Fatalf("MemFree(bogus) = %v, want *cuda.Error", err)
	}
	want := "cuda: cuMemFree_v2: CUDA_ERROR_INVALID_VALUE (1): invalid argument"
	if ce.Error() != want || ce.Lib != "cuda" || ce.Func != "cuMemFree_v2" || ce.Code != 1 {
		t.Errorf("error %q %+v, want %q", ce.Error(), ce, want)
	}
	e.wantArgs("cuMemFree_v2", map[string]string{"dptr": "0x1234"})
	if _, err := e.d.MemAlloc(1 << 50); !strings.Contains(fmt.Sprint(err), "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory") {
		t.Errorf("MemAlloc(1<<50) = %v", err)
	}
	_, err = e.api.BLAS.Create()
	e.must(err)
	err = e.api.BLAS.SetMathMode(0, cuda.MathTF32)
	if !errors.As(err, &ce) || ce.Error() != "cublas: cublasSetMathMode: CUBLAS_STATUS_NOT_INITIALIZED (1): the library was not initialized" {
		t.Errorf("SetMathMode(nil handle) = %v", err)
	}
}

func TestDriverArguments(t *testing.T) {
	e := setup(t)
	d := e.d
	p := e.alloc(4096)
	e.wantArgs("cuMemAlloc_v2", map[string]string{"bytesize": "4096"})
	h := e.pinned(1000)
	e.wantArgs("cuMemAllocHost_v2", map[string]string{"bytesize": "1000"})

	e.must(d.MemcpyHtoDAsync(p+16, h, 999, e.s))
	e.wantArgs("cuMemcpyHtoDAsync_v2", map[string]string{"dstDevice": hex(uint64(p + 16)), "srcHost": hex(uintptr(h)), "ByteCount": "999", "hStream": hex(uintptr(e.s))})
	e.must(d.MemcpyDtoHAsync(unsafe.Add(h, 8), p+24, 777, e.s))
	e.wantArgs("cuMemcpyDtoHAsync_v2", map[string]string{"dstHost": hex(uintptr(h) + 8), "srcDevice": hex(uint64(p + 24)), "ByteCount": "777", "hStream": hex(uintptr(e.s))})
	e.must(d.MemsetD32Async(p+32, 0xdeadbeef, 55, e.s))
	e.wantArgs("cuMemsetD32Async", map[string]string{"dstDevice": hex(uint64(p + 32)), "ui": fmt.Sprint(uint32(0xdeadbeef)), "N": "55", "hStream": hex(uintptr(e.s))})
	e.must(d.StreamSynchronize(e.s))
	e.wantArgs("cuStreamSynchronize", map[string]string{"hStream": hex(uintptr(e.s))})
	e.must(d.CtxSynchronize())
	e.lastCall("cuCtxSynchronize")
	s2, err := d.StreamCreate()
	e.must(err)
	e.wantArgs("cuStreamCreate", map[string]string{"Flags": "1"})
	e.must(d.StreamDestroy(s2))
	e.wantArgs("cuStreamDestroy_v2", map[string]string{"hStream": hex(uintptr(s2))})

	// The memset ran: 55 words from offset 32.
	got := e.download(p, 4096)
	for i := 0; i < 4096/4; i++ {
		w := binary.LittleEndian.Uint32(got[4*i:])
		if in := i >= 8 && i < 8+55; in != (w == 0xdeadbeef) {
			t.Fatalf("word %d = %#x after MemsetD32Async(p+32, 0xdeadbeef, 55)", i, w)
		}
	}

	m, err := d.ModuleLoadData([]byte("\x7fELF fake"))
	e.must(err)
	if k := e.sl.ModuleKind(); k != 2 {
		t.Errorf("ModuleKind() = %d after loading a CUBIN, want 2", k)
	}
	f, err := d.ModuleGetFunction(m, "tdm_test_axpy")
	e.must(err)
	e.wantArgs("cuModuleGetFunction", map[string]string{"hmod": hex(uintptr(m)), "name": "tdm_test_axpy"})
	l, err := d.NewLaunch(24)
	e.must(err)
	defer func() { e.must(d.FreeLaunch(l)) }()
	if len(l.Params()) != 24 {
		t.Fatalf("len(Params()) = %d, want 24", len(l.Params()))
	}
	x, y := e.upload(f32bytes([]float32{1, 2, 3})), e.upload(f32bytes([]float32{10, 20, 30}))
	writeAxpy(l, x, y, 2, 3)
	e.must(d.LaunchKernel(f, [3]uint32{1, 2, 3}, [3]uint32{4, 5, 6}, 7, e.s, l))
	e.wantArgs("cuLaunchKernel", map[string]string{
		"f": hex(uintptr(f)), "gridDimX": "1", "gridDimY": "2", "gridDimZ": "3",
		"blockDimX": "4", "blockDimY": "5", "blockDimZ": "6", "sharedMemBytes": "7",
		"hStream": hex(uintptr(e.s)), "kernelParams": "0x0", "extra": hex(uintptr(l.Extra())),
	})
	e.wantArgs("cuLaunchKernel.extra", map[string]string{"name": "tdm_test_axpy", "size": "24", "buffer": hex(uintptr(unsafe.Pointer(&l.Params()[0])))})
	// grid.x·block.x = 4 threads cover n = 3.
	if got := bytesF32(e.download(y, 12)); got[0] != 12 || got[1] != 24 || got[2] != 36 {
		t.Errorf("axpy y = %v, want [12 24 36]", got)
	}
	e.must(d.ModuleUnload(m))
	e.wantArgs("cuModuleUnload", map[string]string{"hmod": hex(uintptr(m))})
	for _, q := range []cuda.Ptr{p, x, y} {
		e.must(d.MemFree(q))
	}
	e.wantArgs("cuMemFree_v2", map[string]string{"dptr": hex(uint64(y))})
}

// writeAxpy fills tdm_test_axpy's parameters {x, y *float; a float; n int32}.
func writeAxpy(l *cuda.Launch, x, y cuda.Ptr, a float32, n int32) {
	b := l.Params()
	binary.LittleEndian.PutUint64(b[0:], uint64(x))
	binary.LittleEndian.PutUint64(b[8:], uint64(y))
	binary.LittleEndian.PutUint32(b[16:], math.Float32bits(a))
	binary.LittleEndian.PutUint32(b[20:], uint32(n))
}

func TestLaunchFailures(t *testing.T) {
	e := setup(t)
	d := e.d
	m, err := d.ModuleLoadData([]byte("// PTX\n.version 8.0\n"))
	e.must(err)
	defer func() { e.must(d.ModuleUnload(m)) }()
	if k := e.sl.ModuleKind(); k != 1 {
		t.Errorf("ModuleKind() = %d after loading PTX, want 1", k)
	}
	unknown, err := d.ModuleGetFunction(m, "tdm_no_such_kernel")
	e.must(err)
	axpy, err := d.ModuleGetFunction(m, "tdm_test_axpy")
	e.must(err)
	short, err := d.NewLaunch(16)
	e.must(err)
	defer func() { e.must(d.FreeLaunch(short)) }()
	var ce *cuda.Error
	err = d.LaunchKernel(unknown, [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, e.s, short)
	if !errors.As(err, &ce) || ce.Code != cuda.ErrNotFound {
		t.Errorf("launching an unknown kernel: %v, want CUDA_ERROR_NOT_FOUND", err)
	}
	err = d.LaunchKernel(axpy, [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, e.s, short)
	if !errors.As(err, &ce) || ce.Code != cuda.ErrInvalidValue {
		t.Errorf("launching with a 16-byte block for a 24-byte struct: %v, want CUDA_ERROR_INVALID_VALUE", err)
	}
	if _, err := d.NewLaunch(0); err == nil {
		t.Error("NewLaunch(0) succeeded")
	}
}
