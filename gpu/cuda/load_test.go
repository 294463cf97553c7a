package cuda_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/standin"
)

func loadError(t *testing.T, p cuda.Paths) *cuda.LoadError {
	t.Helper()
	api, err := cuda.Load(p)
	if err == nil {
		t.Fatalf("Load(%+v) = %v, want an error", p, api.Loaded)
	}
	var le *cuda.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load error %T %v, want *LoadError", err, err)
	}
	return le
}

func TestLoadAllPathsMissing(t *testing.T) {
	dir := t.TempDir()
	p := cuda.Paths{
		CUDA:     filepath.Join(dir, "a/libcuda.so.1"),
		CUBLAS:   filepath.Join(dir, "b/libcublas.so.13"),
		CUBLASLT: filepath.Join(dir, "c/libcublasLt.so.13"),
		NVRTC:    filepath.Join(dir, "d/libnvrtc.so.13"),
	}
	le := loadError(t, p)
	msg := le.Error()
	for lib, path := range map[string]string{"cuda": p.CUDA, "cublas": p.CUBLAS, "cublasLt": p.CUBLASLT} {
		if !strings.Contains(msg, lib+": "+path+" (") {
			t.Errorf("error does not name %s at %s: %s", lib, path, msg)
		}
		i := slices.IndexFunc(le.Tried, func(a cuda.Attempt) bool { return a.Lib == lib })
		if i < 0 || le.Tried[i].Path != path || le.Tried[i].Err == nil {
			t.Errorf("Tried has no failed attempt for %s at %s: %+v", lib, path, le.Tried)
		}
	}
	if len(le.Tried) != 3 {
		t.Errorf("%d attempts, want exactly the 3 overrides: %+v", len(le.Tried), le.Tried)
	}
}

func TestLoadDiscoveryListsEveryPath(t *testing.T) {
	extra := t.TempDir()
	t.Setenv("LD_LIBRARY_PATH", extra)
	api, err := cuda.Load(cuda.Paths{})
	if err == nil {
		t.Skipf("a CUDA installation was found: %v", api.Loaded)
	}
	var le *cuda.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %T, want *LoadError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"libcuda.so.1 (", "/usr/local/cuda/lib64/libcuda.so.1 (", "/usr/lib/wsl/lib/libcuda.so.1 (",
		filepath.Join(extra, "libcuda.so.1") + " (", "libcublasLt.so.12 (", "libcublas.so.13 (",
		"/usr/local/cuda/targets/x86_64-linux/lib/libcublas.so.12 (",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not list %q:\n%s", want, msg)
		}
	}
	for _, a := range le.Tried {
		if a.Err == nil && a.Lib == "cuda" {
			t.Errorf("cuda loaded from %s yet Load failed", a.Path)
		}
	}
}

func TestLoadNotALibrary(t *testing.T) {
	lib := standinLib(t)
	bad := filepath.Join(t.TempDir(), "libcuda.so.1")
	if err := os.WriteFile(bad, []byte("not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := standin.Paths(lib)
	p.CUDA = bad
	le := loadError(t, p)
	if len(le.Tried) == 0 || le.Tried[0].Path != bad || le.Tried[0].Err == nil {
		t.Fatalf("Tried = %+v, want a failed attempt at %s first", le.Tried, bad)
	}
	if !strings.Contains(le.Error(), bad) {
		t.Errorf("error does not name %s: %v", bad, le)
	}
	for _, a := range le.Tried[1:] {
		if a.Err != nil {
			t.Errorf("%s at %s failed too: %v", a.Lib, a.Path, a.Err)
		}
	}
}

func TestLoadMissingSymbols(t *testing.T) {
	lib := standinLib(t)
	partial := standin.Compile(t, "libpartial.so", "int cuInit(unsigned f) { return 0; }\nint cuDeviceGet(int *d, int o) { return 0; }\n")
	p := standin.Paths(lib)
	p.CUDA = partial
	le := loadError(t, p)
	for _, want := range []string{"cuda:cuLaunchKernel", "cuda:cuMemAlloc_v2", "cuda:cuGraphLaunch", "cuda:cuStreamBeginCapture_v2"} {
		if !slices.Contains(le.Missing, want) {
			t.Errorf("Missing lacks %s: %v", want, le.Missing)
		}
	}
	for _, m := range le.Missing {
		if m == "cuda:cuInit" || m == "cuda:cuDeviceGet" || !strings.HasPrefix(m, "cuda:") {
			t.Errorf("Missing has %s", m)
		}
	}
	if !strings.Contains(le.Error(), "missing symbols: ") || !strings.Contains(le.Error(), "cuLaunchKernel") {
		t.Errorf("error does not list the missing symbols: %v", le)
	}

	// A library lacking NVRTC's symbols is not fatal.
	p = standin.Paths(lib)
	p.NVRTC = partial
	api, err := cuda.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var nle *cuda.LoadError
	if api.NVRTC != nil || !errors.As(api.NVRTCErr, &nle) || !slices.Contains(nle.Missing, "nvrtc:nvrtcCompileProgram") {
		t.Errorf("NVRTC = %v, NVRTCErr = %v; want nil and a LoadError missing nvrtcCompileProgram", api.NVRTC, api.NVRTCErr)
	}
}

func TestLoadNVRTCNone(t *testing.T) {
	lib := standinLib(t)
	p := standin.Paths(lib)
	p.NVRTC = cuda.None
	api, err := cuda.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if api.NVRTC != nil || api.NVRTCErr == nil || !strings.Contains(api.NVRTCErr.Error(), `"none"`) {
		t.Errorf("NVRTC = %v, NVRTCErr = %v; want nil and a reason naming \"none\"", api.NVRTC, api.NVRTCErr)
	}
	if _, ok := api.Loaded["nvrtc"]; ok {
		t.Errorf("Loaded has nvrtc: %v", api.Loaded)
	}
	for _, l := range []string{"cuda", "cublas", "cublasLt"} {
		if api.Loaded[l] != lib {
			t.Errorf("Loaded[%s] = %q, want %s", l, api.Loaded[l], lib)
		}
	}

	p = standin.Paths(lib)
	p.CUBLAS = cuda.None
	le := loadError(t, p)
	if !strings.Contains(le.Error(), "only allowed for NVRTC") {
		t.Errorf("error for cuBLAS \"none\": %v", le)
	}
}

func TestLoadAll(t *testing.T) {
	lib := standinLib(t)
	api, err := cuda.Load(standin.Paths(lib))
	if err != nil {
		t.Fatal(err)
	}
	if api.Driver == nil || api.BLAS == nil || api.Lt == nil || api.NVRTC == nil || api.NVRTCErr != nil {
		t.Fatalf("API incomplete: %+v", api)
	}
	if len(api.Loaded) != 4 || api.Loaded["nvrtc"] != lib {
		t.Errorf("Loaded = %v", api.Loaded)
	}
}

func TestPathsFromEnv(t *testing.T) {
	t.Setenv("TANDEM_LIBCUDA", "/x/libcuda.so.1")
	t.Setenv("TANDEM_LIBCUBLAS", "/x/libcublas.so.13")
	t.Setenv("TANDEM_LIBCUBLASLT", "/x/libcublasLt.so.13")
	t.Setenv("TANDEM_LIBNVRTC", "none")
	want := cuda.Paths{CUDA: "/x/libcuda.so.1", CUBLAS: "/x/libcublas.so.13", CUBLASLT: "/x/libcublasLt.so.13", NVRTC: "none"}
	if got := cuda.PathsFromEnv(); got != want {
		t.Errorf("PathsFromEnv() = %+v, want %+v", got, want)
	}
}
