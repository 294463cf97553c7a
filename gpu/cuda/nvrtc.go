package cuda

import (
	"fmt"
	"unsafe"
)

// NVRTC is the bound runtime compiler (libnvrtc).
type NVRTC struct {
	nvrtcVersion           func(major, minor *int32) int32
	nvrtcCreateProgram     func(p *uintptr, src, name unsafe.Pointer, nh int32, headers, includes unsafe.Pointer) int32
	nvrtcCompileProgram    func(p uintptr, n int32, opts unsafe.Pointer) int32
	nvrtcGetProgramLogSize func(p uintptr, n *uint64) int32
	nvrtcGetProgramLog     func(p uintptr, log *byte) int32
	nvrtcGetCUBINSize      func(p uintptr, n *uint64) int32
	nvrtcGetCUBIN          func(p uintptr, out *byte) int32
	nvrtcDestroyProgram    func(p *uintptr) int32
	nvrtcGetErrorString    func(r int32) unsafe.Pointer
}

func (v *NVRTC) bind(b *binder) {
	b.fn(&v.nvrtcVersion, "nvrtcVersion")
	b.fn(&v.nvrtcCreateProgram, "nvrtcCreateProgram")
	b.fn(&v.nvrtcCompileProgram, "nvrtcCompileProgram")
	b.fn(&v.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize")
	b.fn(&v.nvrtcGetProgramLog, "nvrtcGetProgramLog")
	b.fn(&v.nvrtcGetCUBINSize, "nvrtcGetCUBINSize")
	b.fn(&v.nvrtcGetCUBIN, "nvrtcGetCUBIN")
	b.fn(&v.nvrtcDestroyProgram, "nvrtcDestroyProgram")
	b.fn(&v.nvrtcGetErrorString, "nvrtcGetErrorString")
}

func (v *NVRTC) check(fn string, r int32) *Error {
	if r == 0 {
		return nil
	}
	e := &Error{Lib: "nvrtc", Func: fn, Code: int(r), Name: goString(v.nvrtcGetErrorString(r))}
	if e.Name == "" {
		e.Name = fmt.Sprintf("nvrtcResult(%d)", r)
	}
	return e
}

// Version is NVRTC's CUDA version.
func (v *NVRTC) Version() (major, minor int, err error) {
	var a, b int32
	if e := v.check("nvrtcVersion", v.nvrtcVersion(&a, &b)); e != nil {
		return 0, 0, e
	}
	return int(a), int(b), nil
}

// Compile compiles the CUDA C source src (named name in messages) with
// opts (e.g. "--gpu-architecture=sm_90") and returns the CUBIN and the
// compiler's log. A failed compilation is an *Error whose Msg is the log.
func (v *NVRTC) Compile(src, name string, opts []string) (cubin []byte, log string, err error) {
	csrc, err := cString(src)
	if err != nil {
		return nil, "", err
	}
	defer cFree(csrc)
	cname, err := cString(name)
	if err != nil {
		return nil, "", err
	}
	defer cFree(cname)
	copts, freeOpts, err := cStrings(opts)
	if err != nil {
		return nil, "", err
	}
	defer freeOpts()

	var prog uintptr
	if e := v.check("nvrtcCreateProgram", v.nvrtcCreateProgram(&prog, csrc, cname, 0, nil, nil)); e != nil {
		return nil, "", e
	}
	defer v.nvrtcDestroyProgram(&prog)

	cerr := v.check("nvrtcCompileProgram", v.nvrtcCompileProgram(prog, int32(len(opts)), copts))
	log, lerr := v.programLog(prog)
	if cerr != nil {
		cerr.Msg = fmt.Sprintf("compiling %s: %s", name, log)
		return nil, log, cerr
	}
	if lerr != nil {
		return nil, "", lerr
	}
	var n uint64
	if e := v.check("nvrtcGetCUBINSize", v.nvrtcGetCUBINSize(prog, &n)); e != nil {
		return nil, log, e
	}
	if n == 0 {
		return nil, log, &Error{Lib: "nvrtc", Func: "nvrtcGetCUBINSize", Name: "empty CUBIN", Msg: "no CUBIN (was an sm_ architecture given?)"}
	}
	cubin = make([]byte, n)
	if e := v.check("nvrtcGetCUBIN", v.nvrtcGetCUBIN(prog, &cubin[0])); e != nil {
		return nil, log, e
	}
	return cubin, log, nil
}

func (v *NVRTC) programLog(prog uintptr) (string, error) {
	var n uint64
	if e := v.check("nvrtcGetProgramLogSize", v.nvrtcGetProgramLogSize(prog, &n)); e != nil {
		return "", e
	}
	if n <= 1 {
		return "", nil
	}
	buf := make([]byte, n)
	if e := v.check("nvrtcGetProgramLog", v.nvrtcGetProgramLog(prog, &buf[0])); e != nil {
		return "", e
	}
	for i, c := range buf {
		if c == 0 {
			return string(buf[:i]), nil
		}
	}
	return string(buf), nil
}
