package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ebitengine/purego"
)

// Paths overrides where the libraries are loaded from. An empty field means
// discover the library; a non-empty one is the only path tried. "none"
// means do not load, and is only allowed for NVRTC.
//
// Discovery tries the sonames through the dynamic loader (libcuda.so.1;
// libcublasLt.so.13, .12; libcublas.so.13, .12; libnvrtc.so.13, .12), then
// the same names in /usr/local/cuda/lib64,
// /usr/local/cuda/targets/x86_64-linux/lib, /usr/lib/x86_64-linux-gnu,
// /usr/lib64, /usr/lib/wsl/lib and each entry of LD_LIBRARY_PATH. cuBLASLt
// is loaded before cuBLAS, and cuBLAS is tried first next to it with the
// same major version.
type Paths struct {
	CUDA, CUBLAS, CUBLASLT, NVRTC string
}

// None is the Paths value that disables a library (NVRTC only).
const None = "none"

// PathsFromEnv reads the overrides from TANDEM_LIBCUDA, TANDEM_LIBCUBLAS,
// TANDEM_LIBCUBLASLT and TANDEM_LIBNVRTC.
func PathsFromEnv() Paths {
	return Paths{
		CUDA:     os.Getenv("TANDEM_LIBCUDA"),
		CUBLAS:   os.Getenv("TANDEM_LIBCUBLAS"),
		CUBLASLT: os.Getenv("TANDEM_LIBCUBLASLT"),
		NVRTC:    os.Getenv("TANDEM_LIBNVRTC"),
	}
}

// API is the loaded libraries. NVRTC is nil when it could not be loaded
// or was disabled, with the reason in NVRTCErr. Loaded maps each library
// ("cuda", "cublas", "cublasLt", "nvrtc") to the path it was loaded from.
type API struct {
	Driver   *Driver
	BLAS     *BLAS
	Lt       *Lt
	NVRTC    *NVRTC
	NVRTCErr error
	Loaded   map[string]string
}

var sonames = map[string][]string{
	"cuda":     {"libcuda.so.1"},
	"cublasLt": {"libcublasLt.so.13", "libcublasLt.so.12"},
	"cublas":   {"libcublas.so.13", "libcublas.so.12"},
	"nvrtc":    {"libnvrtc.so.13", "libnvrtc.so.12"},
}

var searchDirs = []string{
	"/usr/local/cuda/lib64",
	"/usr/local/cuda/targets/x86_64-linux/lib",
	"/usr/lib/x86_64-linux-gnu",
	"/usr/lib64",
	"/usr/lib/wsl/lib",
}

// candidates lists the paths to try for lib: the override alone, or the
// sonames, then the sonames in near (if any) and the search directories.
func candidates(lib, override string, near string) []string {
	if override != "" {
		return []string{override}
	}
	names := sonames[lib]
	var out []string
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if near != "" {
		dir, base := filepath.Split(near)
		// Same major version as the library it sits next to first.
		if i := strings.LastIndex(base, ".so."); i >= 0 {
			for _, n := range names {
				if strings.HasSuffix(n, base[i:]) {
					add(filepath.Join(dir, n))
				}
			}
		}
		for _, n := range names {
			add(filepath.Join(dir, n))
		}
	}
	for _, n := range names {
		add(n)
	}
	dirs := append([]string{}, searchDirs...)
	for _, d := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		for _, n := range names {
			add(filepath.Join(d, n))
		}
	}
	return out
}

// binder resolves the symbols of one opened library.
type binder struct {
	lib     string
	h       uintptr
	missing []string
}

// fn binds the C function name to *fptr, or records it as missing.
func (b *binder) fn(fptr any, name string) {
	sym, err := purego.Dlsym(b.h, name)
	if err != nil || sym == 0 {
		b.missing = append(b.missing, b.lib+":"+name)
		return
	}
	purego.RegisterFunc(fptr, sym)
}

// open tries each candidate until one opens and bind resolves all its
// symbols; it returns the attempts and the missing symbols of the failed
// ones.
func open(lib string, paths []string, bind func(*binder)) (path string, tried []Attempt, missing []string) {
	for _, p := range paths {
		if p == None {
			tried = append(tried, Attempt{lib, p, errors.New(`"none" is only allowed for NVRTC`)})
			continue
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			tried = append(tried, Attempt{lib, p, err})
			continue
		}
		b := &binder{lib: lib, h: h}
		bind(b)
		if len(b.missing) > 0 {
			tried = append(tried, Attempt{lib, p, fmt.Errorf("missing %d symbols: %s", len(b.missing), strings.Join(b.missing, ", "))})
			for _, m := range b.missing {
				if !slices.Contains(missing, m) {
					missing = append(missing, m)
				}
			}
			_ = purego.Dlclose(h)
			continue
		}
		tried = append(tried, Attempt{lib, p, nil})
		return p, tried, missing
	}
	return "", tried, missing
}

// Load opens and binds the libraries. It returns a *LoadError when libcuda,
// libcublas or libcublasLt cannot be loaded or lacks a symbol; NVRTC
// failures are reported in API.NVRTCErr instead.
func Load(p Paths) (*API, error) {
	le := &LoadError{}
	if err := loadLibc(); err != nil {
		le.Tried = append(le.Tried, Attempt{"libc", libcName, err})
		return nil, le
	}
	api := &API{Loaded: map[string]string{}}
	step := func(lib, override, near string, bind func(*binder)) string {
		path, tried, missing := open(lib, candidates(lib, override, near), bind)
		le.Tried = append(le.Tried, tried...)
		if path == "" {
			le.Missing = append(le.Missing, missing...)
			return ""
		}
		api.Loaded[lib] = path
		return path
	}
	d, bl, lt := &Driver{}, &BLAS{}, &Lt{}
	okCUDA := step("cuda", p.CUDA, "", d.bind) != ""
	ltPath := step("cublasLt", p.CUBLASLT, "", lt.bind)
	near := ""
	if filepath.IsAbs(ltPath) {
		near = ltPath
	}
	okBLAS := step("cublas", p.CUBLAS, near, bl.bind) != ""
	if !okCUDA || ltPath == "" || !okBLAS {
		return nil, le
	}
	api.Driver, api.BLAS, api.Lt = d, bl, lt
	if err := lt.init(); err != nil {
		return nil, err
	}

	if p.NVRTC == None {
		api.NVRTCErr = errors.New(`cuda: NVRTC not loaded: its path is "none"`)
		return api, nil
	}
	nv := &NVRTC{}
	path, tried, missing := open("nvrtc", candidates("nvrtc", p.NVRTC, near), nv.bind)
	if path == "" {
		api.NVRTCErr = &LoadError{Tried: tried, Missing: missing}
		return api, nil
	}
	api.NVRTC = nv
	api.Loaded["nvrtc"] = path
	preloadBuiltins(path)
	return api, nil
}

// preloadBuiltins opens libnvrtc-builtins from NVRTC's directory, so that
// NVRTC finds it without LD_LIBRARY_PATH. Best effort: NVRTC reports a
// missing builtins library itself, at compile time.
func preloadBuiltins(nvrtcPath string) {
	if !filepath.IsAbs(nvrtcPath) {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(nvrtcPath), "libnvrtc-builtins.so*"))
	slices.Sort(matches)
	slices.Reverse(matches) // the most specific version first
	for _, m := range matches {
		if _, err := purego.Dlopen(m, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
			return
		}
	}
}
