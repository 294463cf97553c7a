package cuda

import (
	"fmt"
	"unsafe"
)

// Launch is a kernel's parameter block in pinned C memory, laid out for
// cuLaunchKernel's extra argument:
//
//	offset  0: extra[5] = {BUFFER_POINTER, &params, BUFFER_SIZE, &size, END}
//	offset 40: size (size_t)
//	offset 48: the parameter bytes (16-byte aligned)
//
// Every kernel takes one parameter struct; write it into Params. The
// driver copies the bytes at launch (and a stream capture copies them into
// the graph), so a Launch may be rewritten after each launch.
type Launch struct {
	base unsafe.Pointer
	size int
}

const launchHeader = 48

// NewLaunch allocates a block for a size-byte parameter struct.
func (d *Driver) NewLaunch(size int) (*Launch, error) {
	if size <= 0 {
		return nil, fmt.Errorf("cuda: NewLaunch: parameter size %d, want > 0", size)
	}
	p, err := d.MemAllocHost(uint64(launchHeader + size))
	if err != nil {
		return nil, err
	}
	clear(unsafe.Slice((*byte)(p), launchHeader+size))
	extra := unsafe.Slice((*unsafe.Pointer)(p), 5)
	// The three keys are small integers, not addresses: write them as
	// words so that no integer is ever held in a Go pointer variable.
	words := unsafe.Slice((*uintptr)(p), 5)
	words[0] = launchParamBufferPtr
	extra[1] = unsafe.Add(p, launchHeader)
	words[2] = launchParamBufferSize
	extra[3] = unsafe.Add(p, 40)
	words[4] = launchParamEnd
	*(*uint64)(unsafe.Add(p, 40)) = uint64(size)
	return &Launch{base: p, size: size}, nil
}

// Params is the parameter bytes (length = the size given to NewLaunch).
func (l *Launch) Params() []byte {
	return unsafe.Slice((*byte)(unsafe.Add(l.base, launchHeader)), l.size)
}

// Size is the parameter struct's size in bytes.
func (l *Launch) Size() int { return l.size }

// Extra is the address of the extra array handed to cuLaunchKernel.
func (l *Launch) Extra() unsafe.Pointer { return l.base }

// FreeLaunch releases l's block; l must not be used afterwards.
func (d *Driver) FreeLaunch(l *Launch) error {
	if l == nil || l.base == nil {
		return nil
	}
	err := d.MemFreeHost(l.base)
	l.base = nil
	return err
}

// LaunchKernel launches f with l's parameters on s: grid and block in
// x, y, z, shared bytes of dynamic shared memory, kernelParams NULL.
func (d *Driver) LaunchKernel(f Function, grid, block [3]uint32, shared uint32, s Stream, l *Launch) error {
	if l == nil || l.base == nil {
		return fmt.Errorf("cuda: cuLaunchKernel: no parameter block")
	}
	return d.check("cuLaunchKernel", d.cuLaunchKernel(uintptr(f), grid[0], grid[1], grid[2],
		block[0], block[1], block[2], shared, uintptr(s), nil, l.base))
}
