package cuda

import (
	"fmt"
	"strings"
)

// Error is a failed call: the library ("cuda", "cublas", "cublasLt",
// "nvrtc"), the C function, its status code and the library's name and
// description of it.
type Error struct {
	Lib, Func string
	Code      int
	Name, Msg string
}

// Error formats as "cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s: %s (%d)", e.Lib, e.Func, e.Name, e.Code)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Attempt is one try at opening a library: Err is nil for the path that
// was loaded.
type Attempt struct {
	Lib, Path string
	Err       error
}

// LoadError says why [Load] failed: every path tried for every library,
// with the reason, and the symbols that could not be resolved, each as
// "lib:symbol".
type LoadError struct {
	Tried   []Attempt
	Missing []string
}

// Error lists every attempt, grouped by library in the order tried, and
// the missing symbols.
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("cuda: cannot load the CUDA libraries")
	var lib string
	for _, a := range e.Tried {
		if a.Lib != lib {
			lib = a.Lib
			fmt.Fprintf(&b, "; %s: ", lib)
		} else {
			b.WriteString(", ")
		}
		if a.Err == nil {
			fmt.Fprintf(&b, "%s (loaded)", a.Path)
		} else {
			fmt.Fprintf(&b, "%s (%v)", a.Path, a.Err)
		}
	}
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "; missing symbols: %s", strings.Join(e.Missing, ", "))
	}
	return b.String()
}
