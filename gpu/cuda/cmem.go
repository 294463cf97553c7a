package cuda

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// C memory for strings, string arrays, module images and small scratch
// values: libc's malloc and free, bound once per process.

var libc struct {
	once   sync.Once
	err    error
	malloc func(n uintptr) unsafe.Pointer
	free   func(p unsafe.Pointer)
}

const libcName = "libc.so.6"

func loadLibc() error {
	libc.once.Do(func() {
		h, err := purego.Dlopen(libcName, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			libc.err = fmt.Errorf("cuda: open %s: %w", libcName, err)
			return
		}
		for _, s := range []struct {
			fn   any
			name string
		}{{&libc.malloc, "malloc"}, {&libc.free, "free"}} {
			sym, err := purego.Dlsym(h, s.name)
			if err != nil {
				libc.err = fmt.Errorf("cuda: %s: %w", libcName, err)
				return
			}
			purego.RegisterFunc(s.fn, sym)
		}
	})
	return libc.err
}

// cAlloc returns n zeroed bytes of C memory (at least one byte), or nil.
func cAlloc(n int) unsafe.Pointer {
	if n < 1 {
		n = 1
	}
	p := libc.malloc(uintptr(n))
	if p != nil {
		clear(unsafe.Slice((*byte)(p), n))
	}
	return p
}

// cFree releases memory from cAlloc; nil is ignored.
func cFree(p unsafe.Pointer) {
	if p != nil {
		libc.free(p)
	}
}

// cBytes copies b into C memory followed by a NUL byte.
func cBytes(b []byte) (unsafe.Pointer, error) {
	p := cAlloc(len(b) + 1)
	if p == nil {
		return nil, fmt.Errorf("cuda: malloc of %d bytes failed", len(b)+1)
	}
	copy(unsafe.Slice((*byte)(p), len(b)+1), b)
	return p, nil
}

// cString copies s into C memory as a NUL-terminated string.
func cString(s string) (unsafe.Pointer, error) {
	return cBytes([]byte(s))
}

// cStrings builds a C array of C strings; free releases the array and the
// strings.
func cStrings(ss []string) (arr unsafe.Pointer, free func(), err error) {
	if len(ss) == 0 {
		return nil, func() {}, nil
	}
	arr = cAlloc(len(ss) * int(unsafe.Sizeof(uintptr(0))))
	if arr == nil {
		return nil, nil, fmt.Errorf("cuda: malloc of a %d-string array failed", len(ss))
	}
	slots := unsafe.Slice((*unsafe.Pointer)(arr), len(ss))
	free = func() {
		for _, p := range slots {
			cFree(p)
		}
		cFree(arr)
	}
	for i, s := range ss {
		if slots[i], err = cString(s); err != nil {
			free()
			return nil, nil, err
		}
	}
	return arr, free, nil
}

// goString copies a NUL-terminated C string (at most 1 MiB) into Go memory.
func goString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for n < 1<<20 && *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}
