package cuda_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tandemml/tandem/gpu/cuda"
)

func TestNVRTCCompile(t *testing.T) {
	e := setup(t)
	nv := e.api.NVRTC
	src := "extern \"C\" __global__ void k() {}\n"
	cubin, log, err := nv.Compile(src, "kernels.cu", []string{"--gpu-architecture=sm_90", "-default-device"})
	e.must(err)
	if !bytes.HasPrefix(cubin, []byte("STANDIN-CUBIN\n")) || log != "" {
		t.Errorf("Compile = %q, log %q; want the stand-in CUBIN and an empty log", cubin, log)
	}
	e.wantArgs("nvrtcCreateProgram", map[string]string{"name": "kernels.cu", "numHeaders": "0", "srclen": "34"})
	e.wantArgs("nvrtcCompileProgram", map[string]string{"numOptions": "2"})
	opts := e.sl.Calls("nvrtcCompileProgram.option")
	if len(opts) != 2 || opts[0].Args["0"] != "--gpu-architecture=sm_90" || opts[1].Args["1"] != "-default-device" {
		t.Errorf("options logged as %+v", opts)
	}
	if len(e.sl.Calls("nvrtcDestroyProgram")) != 1 {
		t.Error("the program was not destroyed")
	}
	other, _, err := nv.Compile(src+"// changed\n", "kernels.cu", nil)
	e.must(err)
	if bytes.Equal(cubin, other) {
		t.Error("two sources compiled to the same CUBIN")
	}
	if _, err := e.d.ModuleLoadData(cubin); err != nil || e.sl.ModuleKind() != 2 {
		t.Errorf("loading the CUBIN: %v, kind %d", err, e.sl.ModuleKind())
	}
}

func TestNVRTCCompileFailure(t *testing.T) {
	e := setup(t)
	t.Setenv("TANDEM_STANDIN_NVRTC_FAIL", "1")
	cubin, log, err := e.api.NVRTC.Compile("bad", "broken.cu", nil)
	var ce *cuda.Error
	if !errors.As(err, &ce) || ce.Code != cuda.NVRTCErrorCompilation || ce.Name != "NVRTC_ERROR_COMPILATION" {
		t.Fatalf("Compile = %v, want NVRTC_ERROR_COMPILATION", err)
	}
	if cubin != nil || !strings.Contains(log, "broken.cu(1): error") || !strings.Contains(err.Error(), log) {
		t.Errorf("cubin %q, log %q, error %q: want no CUBIN and the log in the error", cubin, log, err)
	}
	if len(e.sl.Calls("nvrtcDestroyProgram")) != 1 {
		t.Error("the failed program was not destroyed")
	}
}
