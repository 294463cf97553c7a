//go:build linux

package kernel

import (
	"math"
	"syscall"
	"testing"
	"unsafe"
)

// endOfPage maps two pages, makes the second inaccessible and returns the
// last n bytes of the first: reading one byte past the slice faults.
func endOfPage(t *testing.T, n int) []byte {
	t.Helper()
	ps := syscall.Getpagesize()
	if n > ps {
		t.Fatalf("%d bytes do not fit a page", n)
	}
	mem, err := syscall.Mmap(-1, 0, 2*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[ps:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	return mem[ps-n : ps : ps]
}

func f32At(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

func u16At(b []byte) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

// TestDotsPageEnd puts q and the rows at the very end of a readable page:
// the kernels must not read past them, the tail included.
func TestDotsPageEnd(t *testing.T) {
	for _, asm := range modes() {
		setAsm(t, asm)
		for _, d := range sizes {
			for _, n := range []int{1, 2, 3, 4, 5} {
				q := f32At(endOfPage(t, 4*d))
				rows := f32At(endOfPage(t, 4*n*d))
				brows := u16At(endOfPage(t, 2*n*d))
				for i := range q {
					q[i] = float32(i%5) - 2
				}
				for i := range rows {
					rows[i] = float32(i%7) - 3
					brows[i] = uint16(math.Float32bits(rows[i]) >> 16)
				}
				out := make([]float32, n)
				bout := make([]float32, n)
				Dots(out, q, rows, d)
				DotsBF16(bout, q, brows, d)
				for i := range n {
					want, _ := refDot(q, rows[i*d:(i+1)*d])
					if float64(out[i]) != want || float64(bout[i]) != want {
						t.Fatalf("%s d=%d n=%d row %d: %g/%g want %g", modeName(asm), d, n, i, out[i], bout[i], want)
					}
				}
			}
		}
	}
}

// TestFirstAbovePageEnd runs the TopK scan over scores that end a page.
func TestFirstAbovePageEnd(t *testing.T) {
	for _, asm := range modes() {
		setAsm(t, asm)
		for n := range 70 {
			x := f32At(endOfPage(t, 4*n))
			for i := range x {
				x[i] = float32(i)
			}
			if got := firstAbove(x, float32(n)); got != n {
				t.Fatalf("%s n=%d: %d", modeName(asm), n, got)
			}
			if n > 0 {
				if got := firstAbove(x, float32(n)-1.5); got != n-1 {
					t.Fatalf("%s n=%d: %d want %d", modeName(asm), n, got, n-1)
				}
			}
		}
	}
}

// TestSoftmaxPageEnd runs Softmax on rows that end a page: the entries
// that do not fill a block of eight must be read and written without
// touching the next page.
func TestSoftmaxPageEnd(t *testing.T) {
	for _, asm := range modes() {
		setAsm(t, asm)
		for n := 1; n <= 70; n++ {
			x := f32At(endOfPage(t, 4*n))
			for i := range x {
				x[i] = float32(i%9) - 4
			}
			want := refSoftmax(x)
			Softmax(x)
			for i, v := range x {
				if !closeRel(v, want[i], 3) {
					t.Fatalf("%s n=%d: x[%d]=%g want %g", modeName(asm), n, i, v, want[i])
				}
			}
		}
	}
}
