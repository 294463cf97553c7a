package kernels

import (
	"fmt"
	"syscall"
	"testing"
	"unsafe"
)

// emuMem is Mem over the host emulator: one anonymous mapping outside the
// Go heap, so addresses are stable and no Go pointer reaches C; device
// addresses are host addresses.
type emuMem struct {
	h    *host
	mem  []byte
	used int
}

func newEmuMem(t *testing.T) *emuMem {
	m, err := syscall.Mmap(-1, 0, 32<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(m) })
	return &emuMem{h: loadHost(t), mem: m}
}

func (m *emuMem) base() uint64 { return uint64(uintptr(unsafe.Pointer(&m.mem[0]))) }

func (m *emuMem) Alloc(bytes int) (uint64, error) {
	m.used = (m.used + 255) &^ 255
	if bytes < 0 || m.used+bytes > len(m.mem) {
		return 0, fmt.Errorf("emulator memory: %d bytes do not fit", bytes)
	}
	p := m.base() + uint64(m.used)
	m.used += bytes
	return p, nil
}

// span is the mapping's bytes [p, p+n), or an error outside it.
func (m *emuMem) span(p uint64, n int) ([]byte, error) {
	if p < m.base() || p+uint64(n) > m.base()+uint64(m.used) {
		return nil, fmt.Errorf("emulator memory: [%#x, +%d) outside the allocations", p, n)
	}
	o := p - m.base()
	return m.mem[o : o+uint64(n)], nil
}

func (m *emuMem) Write(dst uint64, b []byte) error {
	s, err := m.span(dst, len(b))
	if err == nil {
		copy(s, b)
	}
	return err
}

func (m *emuMem) Read(b []byte, src uint64) error {
	s, err := m.span(src, len(b))
	if err == nil {
		copy(b, s)
	}
	return err
}

func (m *emuMem) Launch(k Kernel) error {
	b := k.Bytes()
	p, err := m.Alloc(len(b))
	if err != nil {
		return err
	}
	if err := m.Write(p, b); err != nil {
		return err
	}
	g, bl := k.Dims()
	if rc := m.h.launch(k.Name(), &g[0], &bl[0], uintptr(p), uintptr(len(b))); rc != 0 {
		return fmt.Errorf("%s: tdm_host_launch returned %d", k.Name(), rc)
	}
	return nil
}

func (m *emuMem) Sync() error { return nil }

// TestCheckOnHost runs Check on the host emulator: every case passes, and
// bit for bit (the kernels compute the references' operations in their
// order), and every kernel has cases.
func TestCheckOnHost(t *testing.T) {
	res := Check(newEmuMem(t))
	seen := map[string]bool{}
	for _, r := range res {
		seen[r.Kernel] = true
		if !r.OK || r.MaxAbs != 0 {
			t.Errorf("%s %s: ok %v max abs %g rel %g (tol %g) %s", r.Kernel, r.Case, r.OK, r.MaxAbs, r.MaxRel, r.Tol, r.Err)
		}
	}
	for _, n := range Names() {
		if !seen[n] {
			t.Errorf("Check has no case for %s", n)
		}
	}
}

// brokenMem runs a different kernel than asked for: Check must notice.
type brokenMem struct {
	*emuMem
	swap func(Kernel) Kernel
}

func (m brokenMem) Launch(k Kernel) error { return m.emuMem.Launch(m.swap(k)) }

// TestCheckCatchesWrongKernels: Check fails a kernel that writes the wrong
// cells, rounds differently or drops the mask, and reports Mem errors.
func TestCheckCatchesWrongKernels(t *testing.T) {
	m := newEmuMem(t)
	bad := brokenMem{m, func(k Kernel) Kernel {
		switch k := k.(type) {
		case *CopyCols:
			c := *k
			c.Relu = 1 - c.Relu // relu on a plain copy and off on relu
			return &c
		case *AddLayerNorm:
			c := *k
			c.Eps *= 2
			if c.Eps == 0 {
				c.Eps = 1e-30
			}
			return &c
		case *TopK:
			c := *k
			c.Mask = 0
			return &c
		case *EmbedGather:
			c := *k
			c.Ldd-- // shifted rows
			return &c
		}
		return k
	}}
	failed := map[string]bool{}
	for _, r := range Check(bad) {
		if !r.OK {
			failed[r.Kernel] = true
		}
	}
	for _, n := range []string{"tdm_copy_cols", "tdm_add_layer_norm", "tdm_topk", "tdm_embed_gather"} {
		if !failed[n] {
			t.Errorf("Check passed a broken %s", n)
		}
	}
	if failed["tdm_add_pos"] {
		t.Error("Check failed an untouched kernel")
	}
	full := &emuMem{h: m.h, mem: m.mem[:1024]}
	for _, r := range Check(full) {
		if r.OK || r.Err == "" {
			t.Fatalf("%s %s passed without memory", r.Kernel, r.Case)
		}
	}
}
