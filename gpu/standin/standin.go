// Package standin builds and drives a host-memory stand-in for libcuda,
// libcublas, libcublasLt and libnvrtc (standin.c), so that the GPU code
// paths run in tests on machines without a GPU or a CUDA toolkit.
//
// [Build] compiles the stand-in, optionally with more C sources (the
// kernels compiled for the host), into one shared library; [Paths] points
// all four CUDA libraries at it; [Open] binds the stand-in's own
// inspection functions: the call log, the count of operations refused for
// using freed memory, the live allocation count and the kind of the last
// module loaded. See standin.c for what the stand-in emulates.
//
// The package is meant for tests only.
package standin

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/tandemml/tandem/gpu/cuda"
)

//go:embed standin.c
var source []byte

// Flags are the compiler flags of every stand-in build.
var Flags = []string{"-shared", "-fPIC", "-O2", "-ffp-contract=off", "-Wl,-Bsymbolic"}

var builds struct {
	mu   sync.Mutex
	libs map[string]string // cache key → library path
}

// compiler is the C compiler to use: $CC, else cc, gcc or clang.
func compiler() (string, error) {
	if cc := os.Getenv("CC"); cc != "" {
		if p, err := exec.LookPath(strings.Fields(cc)[0]); err == nil {
			return p, nil
		}
	}
	for _, c := range []string{"cc", "gcc", "clang"} {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no C compiler (cc, gcc or clang) on PATH")
}

// Build compiles standin.c together with extra C sources (e.g. the kernels' host.c) into a shared library in a temporary directory, once per process per source set, and returns its path; it skips tb (tb.Skip) when no C compiler (cc/gcc/clang) is found.
//
// The library's directory is named by a hash of the compiler, the flags,
// the sources and every file next to an extra source (its headers), so
// that processes building the same sources share one build and a changed
// header rebuilds.
func Build(tb testing.TB, extra ...string) string {
	tb.Helper()
	srcs := make([]string, len(extra))
	for i, e := range extra {
		a, err := filepath.Abs(e)
		if err != nil {
			tb.Fatalf("standin: %v", err)
		}
		srcs[i] = a
	}
	return build(tb, "libstandin.so", source, srcs)
}

// Compile compiles the C source text csrc alone into a shared library
// named name and returns its path (for libraries that are deliberately
// incomplete); it skips tb when no C compiler is found.
func Compile(tb testing.TB, name, csrc string) string {
	tb.Helper()
	return build(tb, name, []byte(csrc), nil)
}

func build(tb testing.TB, name string, main []byte, extra []string) string {
	tb.Helper()
	cc, err := compiler()
	if err != nil {
		tb.Skipf("standin: %v", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", cc, strings.Join(Flags, " "), name)
	h.Write(main)
	for _, e := range extra {
		if err := hashDir(h, e); err != nil {
			tb.Fatalf("standin: %v", err)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))[:20]

	builds.mu.Lock()
	defer builds.mu.Unlock()
	if p, ok := builds.libs[key]; ok {
		return p
	}
	dir := filepath.Join(os.TempDir(), "tandem-standin-"+key)
	lib := filepath.Join(dir, name)
	if _, err := os.Stat(lib); err != nil {
		if err := compileTo(cc, dir, lib, main, extra); err != nil {
			tb.Fatalf("standin: %v", err)
		}
	}
	if builds.libs == nil {
		builds.libs = map[string]string{}
	}
	builds.libs[key] = lib
	return lib
}

// hashDir hashes the extra source e and the regular files beside it.
func hashDir(h interface{ Write([]byte) (int, error) }, e string) error {
	fmt.Fprintf(h, "%s\x00", e)
	src, err := os.ReadFile(e)
	if err != nil {
		return err
	}
	h.Write(src)
	ents, err := os.ReadDir(filepath.Dir(e))
	if err != nil {
		return err
	}
	for _, d := range ents {
		if !d.Type().IsRegular() {
			continue
		}
		if info, err := d.Info(); err != nil || info.Size() > 4<<20 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(e), d.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00", d.Name())
		h.Write(b)
	}
	return nil
}

// compileTo builds lib in dir, atomically: a concurrent build of the same
// key by another process yields the same file.
func compileTo(cc, dir, lib string, main []byte, extra []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "main.c")
	if err := os.WriteFile(src, main, 0o644); err != nil {
		return err
	}
	out := filepath.Join(work, filepath.Base(lib))
	args := append(append([]string{}, Flags...), "-o", out, src)
	args = append(append(args, extra...), "-lm")
	cmd := exec.Command(cc, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, msg)
	}
	return os.Rename(out, lib)
}

// Paths points all four CUDA libraries, NVRTC included, at lib.
func Paths(lib string) cuda.Paths {
	return cuda.Paths{CUDA: lib, CUBLAS: lib, CUBLASLT: lib, NVRTC: lib}
}

// Lib is an opened stand-in library's inspection interface. Its state is
// the process's: every API loaded from the same path shares it.
type Lib struct {
	log        func(buf unsafe.Pointer, n uint64) uint64
	reset      func()
	stale      func() int32
	live       func() int32
	moduleKind func() int32
}

// Open binds the inspection functions of the stand-in library at path.
func Open(path string) (*Lib, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("standin: open %s: %w", path, err)
	}
	l := &Lib{}
	for _, s := range []struct {
		fn   any
		name string
	}{
		{&l.log, "standin_log"}, {&l.reset, "standin_reset"}, {&l.stale, "standin_stale"},
		{&l.live, "standin_live"}, {&l.moduleKind, "standin_module_kind"},
	} {
		sym, err := purego.Dlsym(h, s.name)
		if err != nil {
			return nil, fmt.Errorf("standin: %s: %w", path, err)
		}
		purego.RegisterFunc(s.fn, sym)
	}
	return l, nil
}

// Log is the call log: one line per call, "name key=value ...".
func (l *Lib) Log() string {
	for {
		n := l.log(nil, 0)
		if n == 0 {
			return ""
		}
		buf := make([]byte, n+4096)
		if m := l.log(unsafe.Pointer(&buf[0]), uint64(len(buf))); m <= uint64(len(buf)) {
			return string(buf[:m])
		}
	}
}

// Reset clears the call log and the stale count.
func (l *Lib) Reset() { l.reset() }

// Stale is the number of operations refused for using freed device memory.
func (l *Lib) Stale() int { return int(l.stale()) }

// Live is the number of device allocations not yet freed.
func (l *Lib) Live() int { return int(l.live()) }

// ModuleKind is what the last cuModuleLoadData got: 0 nothing, 1 PTX,
// 2 CUBIN.
func (l *Lib) ModuleKind() int { return int(l.moduleKind()) }

// Call is one logged call: its function name and its key=value arguments.
type Call struct {
	Name string
	Args map[string]string
}

// Calls parses the log lines of the function name (all lines when name is
// empty), in order.
func (l *Lib) Calls(name string) []Call {
	var out []Call
	for _, line := range strings.Split(l.Log(), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (name != "" && f[0] != name) {
			continue
		}
		c := Call{Name: f[0], Args: map[string]string{}}
		for _, kv := range f[1:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				c.Args[k] = v
			}
		}
		out = append(out, c)
	}
	return out
}
