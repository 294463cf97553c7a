package gpu

import (
	"unsafe"

	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
)

// KernelMem is device memory and launches on the first lane, for running
// kernels.Check on the device (gpucheck). Release frees what it allocated.
type KernelMem struct {
	d *Device
	a arena
}

// KernelMem returns a kernels.Mem on the device.
func (d *Device) KernelMem() *KernelMem { return &KernelMem{d: d, a: arena{drv: d.drv}} }

var _ kernels.Mem = (*KernelMem)(nil)

func (m *KernelMem) lane() *lane { return m.d.lanes[0] }

// Alloc returns zeroed device memory.
func (m *KernelMem) Alloc(bytes int) (uint64, error) {
	var p cuda.Ptr
	l := m.lane()
	err := l.do(func() error {
		var err error
		if p, err = m.a.alloc(bytes); err != nil {
			return err
		}
		if err := m.d.drv.MemsetD32Async(p, 0, uint64((bytes+3)/4), l.s); err != nil {
			return err
		}
		return m.d.drv.StreamSynchronize(l.s)
	})
	return uint64(p), err
}

// Write copies b to the device and waits.
func (m *KernelMem) Write(dst uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	l := m.lane()
	return l.do(func() error {
		if err := m.d.drv.MemcpyHtoDAsync(cuda.Ptr(dst), unsafe.Pointer(&b[0]), uint64(len(b)), l.s); err != nil {
			return err
		}
		return m.d.drv.StreamSynchronize(l.s)
	})
}

// Read copies device memory into b and waits.
func (m *KernelMem) Read(b []byte, src uint64) error {
	if len(b) == 0 {
		return nil
	}
	l := m.lane()
	return l.do(func() error {
		if err := m.d.drv.MemcpyDtoHAsync(unsafe.Pointer(&b[0]), cuda.Ptr(src), uint64(len(b)), l.s); err != nil {
			return err
		}
		return m.d.drv.StreamSynchronize(l.s)
	})
}

// Launch issues k on the lane's stream.
func (m *KernelMem) Launch(k kernels.Kernel) error {
	l := m.lane()
	return l.do(func() error { return l.launch(k) })
}

// Sync waits for the lane's stream.
func (m *KernelMem) Sync() error {
	l := m.lane()
	return l.do(func() error { return m.d.drv.StreamSynchronize(l.s) })
}

// Release frees the memory.
func (m *KernelMem) Release() error {
	return m.lane().do(m.a.free)
}
