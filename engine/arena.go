package engine

// arena hands out scratch buffers in call order: the k-th get of a run
// always returns the k-th buffer, grown when a larger batch needs more, so
// after the largest batch has been seen nothing is allocated. Buffers come
// back dirty; callers write every value they read.
type arena struct {
	f  [][]float32
	fi int
	i  [][]int32
	ii int
	p  [][][]float32
	pi int
}

func (a *arena) reset() { a.fi, a.ii, a.pi = 0, 0, 0 }

func (a *arena) floats(n int) []float32 {
	if a.fi == len(a.f) {
		a.f = append(a.f, nil)
	}
	b := a.f[a.fi]
	if cap(b) < n {
		b = make([]float32, n, n+n/4)
		a.f[a.fi] = b
	}
	a.fi++
	return b[:n]
}

func (a *arena) zeros(n int) []float32 {
	b := a.floats(n)
	clear(b)
	return b
}

func (a *arena) ints(n int) []int32 {
	if a.ii == len(a.i) {
		a.i = append(a.i, nil)
	}
	b := a.i[a.ii]
	if cap(b) < n {
		b = make([]int32, n, n+n/4)
		a.i[a.ii] = b
	}
	a.ii++
	return b[:n]
}

// ptrs returns n nil slice headers (for per-task or per-expert outputs).
func (a *arena) ptrs(n int) [][]float32 {
	if a.pi == len(a.p) {
		a.p = append(a.p, nil)
	}
	b := a.p[a.pi]
	if cap(b) < n {
		b = make([][]float32, n)
		a.p[a.pi] = b
	}
	a.pi++
	b = b[:n]
	clear(b)
	return b
}
