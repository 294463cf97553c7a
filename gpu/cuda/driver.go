package cuda

import (
	"fmt"
	"unsafe"
)

// Driver is the bound CUDA driver API (libcuda).
type Driver struct {
	cuInit                      func(flags uint32) int32
	cuDriverGetVersion          func(v *int32) int32
	cuDeviceGetCount            func(n *int32) int32
	cuDeviceGet                 func(dev *int32, ordinal int32) int32
	cuDeviceGetName             func(name *byte, n int32, dev int32) int32
	cuDeviceGetAttribute        func(v *int32, attr int32, dev int32) int32
	cuDeviceTotalMem            func(bytes *uint64, dev int32) int32
	cuDevicePrimaryCtxRetain    func(ctx *uintptr, dev int32) int32
	cuDevicePrimaryCtxRelease   func(dev int32) int32
	cuCtxSetCurrent             func(ctx uintptr) int32
	cuCtxSynchronize            func() int32
	cuStreamCreate              func(s *uintptr, flags uint32) int32
	cuStreamDestroy             func(s uintptr) int32
	cuStreamSynchronize         func(s uintptr) int32
	cuMemAlloc                  func(p *uint64, bytes uint64) int32
	cuMemFree                   func(p uint64) int32
	cuMemAllocHost              func(p *unsafe.Pointer, bytes uint64) int32
	cuMemFreeHost               func(p unsafe.Pointer) int32
	cuMemcpyHtoDAsync           func(dst uint64, src unsafe.Pointer, bytes uint64, s uintptr) int32
	cuMemcpyDtoHAsync           func(dst unsafe.Pointer, src uint64, bytes uint64, s uintptr) int32
	cuMemsetD32Async            func(dst uint64, v uint32, n uint64, s uintptr) int32
	cuModuleLoadData            func(m *uintptr, image unsafe.Pointer) int32
	cuModuleUnload              func(m uintptr) int32
	cuModuleGetFunction         func(f *uintptr, m uintptr, name unsafe.Pointer) int32
	cuLaunchKernel              func(f uintptr, gx, gy, gz, bx, by, bz, shared uint32, s uintptr, params, extra unsafe.Pointer) int32
	cuStreamBeginCapture        func(s uintptr, mode int32) int32
	cuStreamEndCapture          func(s uintptr, g *uintptr) int32
	cuGraphInstantiateWithFlags func(e *uintptr, g uintptr, flags uint64) int32
	cuGraphLaunch               func(e uintptr, s uintptr) int32
	cuGraphExecDestroy          func(e uintptr) int32
	cuGraphDestroy              func(g uintptr) int32
	cuGetErrorName              func(code int32, s *unsafe.Pointer) int32
	cuGetErrorString            func(code int32, s *unsafe.Pointer) int32
}

func (d *Driver) bind(b *binder) {
	b.fn(&d.cuInit, "cuInit")
	b.fn(&d.cuDriverGetVersion, "cuDriverGetVersion")
	b.fn(&d.cuDeviceGetCount, "cuDeviceGetCount")
	b.fn(&d.cuDeviceGet, "cuDeviceGet")
	b.fn(&d.cuDeviceGetName, "cuDeviceGetName")
	b.fn(&d.cuDeviceGetAttribute, "cuDeviceGetAttribute")
	b.fn(&d.cuDeviceTotalMem, "cuDeviceTotalMem_v2")
	b.fn(&d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")
	b.fn(&d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
	b.fn(&d.cuCtxSetCurrent, "cuCtxSetCurrent")
	b.fn(&d.cuCtxSynchronize, "cuCtxSynchronize")
	b.fn(&d.cuStreamCreate, "cuStreamCreate")
	b.fn(&d.cuStreamDestroy, "cuStreamDestroy_v2")
	b.fn(&d.cuStreamSynchronize, "cuStreamSynchronize")
	b.fn(&d.cuMemAlloc, "cuMemAlloc_v2")
	b.fn(&d.cuMemFree, "cuMemFree_v2")
	b.fn(&d.cuMemAllocHost, "cuMemAllocHost_v2")
	b.fn(&d.cuMemFreeHost, "cuMemFreeHost")
	b.fn(&d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2")
	b.fn(&d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2")
	b.fn(&d.cuMemsetD32Async, "cuMemsetD32Async")
	b.fn(&d.cuModuleLoadData, "cuModuleLoadData")
	b.fn(&d.cuModuleUnload, "cuModuleUnload")
	b.fn(&d.cuModuleGetFunction, "cuModuleGetFunction")
	b.fn(&d.cuLaunchKernel, "cuLaunchKernel")
	b.fn(&d.cuStreamBeginCapture, "cuStreamBeginCapture_v2")
	b.fn(&d.cuStreamEndCapture, "cuStreamEndCapture")
	b.fn(&d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags")
	b.fn(&d.cuGraphLaunch, "cuGraphLaunch")
	b.fn(&d.cuGraphExecDestroy, "cuGraphExecDestroy")
	b.fn(&d.cuGraphDestroy, "cuGraphDestroy")
	b.fn(&d.cuGetErrorName, "cuGetErrorName")
	b.fn(&d.cuGetErrorString, "cuGetErrorString")
}

// check turns a CUresult into nil or an *Error for fn.
func (d *Driver) check(fn string, r int32) error {
	if r == 0 {
		return nil
	}
	e := &Error{Lib: "cuda", Func: fn, Code: int(r)}
	var p unsafe.Pointer
	if d.cuGetErrorName(r, &p) == 0 && p != nil {
		e.Name = goString(p)
	} else {
		e.Name = fmt.Sprintf("CUresult(%d)", r)
	}
	p = nil
	if d.cuGetErrorString(r, &p) == 0 && p != nil {
		e.Msg = goString(p)
	}
	return e
}

// Init initialises the driver (cuInit(0)).
func (d *Driver) Init() error { return d.check("cuInit", d.cuInit(0)) }

// DriverVersion is the driver's CUDA version, 1000·major + 10·minor.
func (d *Driver) DriverVersion() (int, error) {
	var v int32
	err := d.check("cuDriverGetVersion", d.cuDriverGetVersion(&v))
	return int(v), err
}

// DeviceCount is the number of CUDA devices.
func (d *Driver) DeviceCount() (int, error) {
	var n int32
	err := d.check("cuDeviceGetCount", d.cuDeviceGetCount(&n))
	return int(n), err
}

// Device is the device handle of ordinal.
func (d *Driver) Device(ordinal int) (int32, error) {
	var dev int32
	err := d.check("cuDeviceGet", d.cuDeviceGet(&dev, int32(ordinal)))
	return dev, err
}

// DeviceName is the device's marketing name.
func (d *Driver) DeviceName(dev int32) (string, error) {
	buf := make([]byte, 256)
	if err := d.check("cuDeviceGetName", d.cuDeviceGetName(&buf[0], int32(len(buf)), dev)); err != nil {
		return "", err
	}
	for i, c := range buf {
		if c == 0 {
			return string(buf[:i]), nil
		}
	}
	return string(buf), nil
}

// DeviceAttribute is one CUdevice_attribute of dev (Attr* constants).
func (d *Driver) DeviceAttribute(attr int, dev int32) (int, error) {
	var v int32
	err := d.check("cuDeviceGetAttribute", d.cuDeviceGetAttribute(&v, int32(attr), dev))
	return int(v), err
}

// DeviceTotalMem is the device's memory in bytes.
func (d *Driver) DeviceTotalMem(dev int32) (uint64, error) {
	var n uint64
	err := d.check("cuDeviceTotalMem_v2", d.cuDeviceTotalMem(&n, dev))
	return n, err
}

// PrimaryCtxRetain retains dev's primary context.
func (d *Driver) PrimaryCtxRetain(dev int32) (Context, error) {
	var c uintptr
	err := d.check("cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain(&c, dev))
	return Context(c), err
}

// PrimaryCtxRelease releases one retain of dev's primary context.
func (d *Driver) PrimaryCtxRelease(dev int32) error {
	return d.check("cuDevicePrimaryCtxRelease_v2", d.cuDevicePrimaryCtxRelease(dev))
}

// CtxSetCurrent makes c current on the calling OS thread.
func (d *Driver) CtxSetCurrent(c Context) error {
	return d.check("cuCtxSetCurrent", d.cuCtxSetCurrent(uintptr(c)))
}

// CtxSynchronize waits for all work of the current context.
func (d *Driver) CtxSynchronize() error { return d.check("cuCtxSynchronize", d.cuCtxSynchronize()) }

// StreamCreate creates a non-blocking stream.
func (d *Driver) StreamCreate() (Stream, error) {
	var s uintptr
	err := d.check("cuStreamCreate", d.cuStreamCreate(&s, streamNonBlocking))
	return Stream(s), err
}

// StreamDestroy destroys s.
func (d *Driver) StreamDestroy(s Stream) error {
	return d.check("cuStreamDestroy_v2", d.cuStreamDestroy(uintptr(s)))
}

// StreamSynchronize waits for the work issued on s.
func (d *Driver) StreamSynchronize(s Stream) error {
	return d.check("cuStreamSynchronize", d.cuStreamSynchronize(uintptr(s)))
}

// MemAlloc allocates bytes of device memory.
func (d *Driver) MemAlloc(bytes uint64) (Ptr, error) {
	var p uint64
	err := d.check("cuMemAlloc_v2", d.cuMemAlloc(&p, bytes))
	return Ptr(p), err
}

// MemFree frees device memory from MemAlloc.
func (d *Driver) MemFree(p Ptr) error { return d.check("cuMemFree_v2", d.cuMemFree(uint64(p))) }

// MemAllocHost allocates bytes of pinned host memory (C memory, not
// managed by Go's collector).
func (d *Driver) MemAllocHost(bytes uint64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	err := d.check("cuMemAllocHost_v2", d.cuMemAllocHost(&p, bytes))
	return p, err
}

// MemFreeHost frees memory from MemAllocHost.
func (d *Driver) MemFreeHost(p unsafe.Pointer) error {
	return d.check("cuMemFreeHost", d.cuMemFreeHost(p))
}

// MemcpyHtoDAsync copies bytes from host src (pinned C memory for a
// captured or truly asynchronous copy) to device dst on s.
func (d *Driver) MemcpyHtoDAsync(dst Ptr, src unsafe.Pointer, bytes uint64, s Stream) error {
	return d.check("cuMemcpyHtoDAsync_v2", d.cuMemcpyHtoDAsync(uint64(dst), src, bytes, uintptr(s)))
}

// MemcpyDtoHAsync copies bytes from device src to host dst on s.
func (d *Driver) MemcpyDtoHAsync(dst unsafe.Pointer, src Ptr, bytes uint64, s Stream) error {
	return d.check("cuMemcpyDtoHAsync_v2", d.cuMemcpyDtoHAsync(dst, uint64(src), bytes, uintptr(s)))
}

// MemsetD32Async sets count 32-bit words at dst to v on s.
func (d *Driver) MemsetD32Async(dst Ptr, v uint32, count uint64, s Stream) error {
	return d.check("cuMemsetD32Async", d.cuMemsetD32Async(uint64(dst), v, count, uintptr(s)))
}

// ModuleLoadData loads a PTX or CUBIN image (copied into C memory with a
// terminating NUL for the call).
func (d *Driver) ModuleLoadData(image []byte) (Module, error) {
	p, err := cBytes(image)
	if err != nil {
		return 0, err
	}
	defer cFree(p)
	var m uintptr
	err = d.check("cuModuleLoadData", d.cuModuleLoadData(&m, p))
	return Module(m), err
}

// ModuleUnload unloads m.
func (d *Driver) ModuleUnload(m Module) error {
	return d.check("cuModuleUnload", d.cuModuleUnload(uintptr(m)))
}

// ModuleGetFunction looks up the kernel name in m.
func (d *Driver) ModuleGetFunction(m Module, name string) (Function, error) {
	p, err := cString(name)
	if err != nil {
		return 0, err
	}
	defer cFree(p)
	var f uintptr
	if err := d.check("cuModuleGetFunction", d.cuModuleGetFunction(&f, uintptr(m), p)); err != nil {
		return 0, fmt.Errorf("%w (kernel %q)", err, name)
	}
	return Function(f), nil
}

// StreamBeginCapture starts capturing s into a graph, in thread-local
// mode.
func (d *Driver) StreamBeginCapture(s Stream) error {
	return d.check("cuStreamBeginCapture_v2", d.cuStreamBeginCapture(uintptr(s), captureModeThreadLocal))
}

// StreamEndCapture ends the capture of s and returns the graph.
func (d *Driver) StreamEndCapture(s Stream) (Graph, error) {
	var g uintptr
	err := d.check("cuStreamEndCapture", d.cuStreamEndCapture(uintptr(s), &g))
	return Graph(g), err
}

// GraphInstantiate makes a launchable copy of g.
func (d *Driver) GraphInstantiate(g Graph) (GraphExec, error) {
	var e uintptr
	err := d.check("cuGraphInstantiateWithFlags", d.cuGraphInstantiateWithFlags(&e, uintptr(g), 0))
	return GraphExec(e), err
}

// GraphLaunch launches e on s.
func (d *Driver) GraphLaunch(e GraphExec, s Stream) error {
	return d.check("cuGraphLaunch", d.cuGraphLaunch(uintptr(e), uintptr(s)))
}

// GraphExecDestroy destroys e.
func (d *Driver) GraphExecDestroy(e GraphExec) error {
	return d.check("cuGraphExecDestroy", d.cuGraphExecDestroy(uintptr(e)))
}

// GraphDestroy destroys g.
func (d *Driver) GraphDestroy(g Graph) error {
	return d.check("cuGraphDestroy", d.cuGraphDestroy(uintptr(g)))
}
