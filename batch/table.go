package batch

// Table is a learned embedding table kept outside the gorgonia graph: rows
// are gathered into the graph's inputs and the inputs' gradients are
// scattered back, so only touched rows are updated (lazy, row-wise).
type Table struct {
	Name      string
	Rows, Dim int
	W         []float32 // Rows × Dim, row-major

	// Sparse gradient of the current step: touched rows in first-touch
	// order and their accumulated gradients.
	touched []int32
	slot    map[int32]int32
	grad    []float32
}

// NewTable returns a table initialised by init (called once per value in
// row-major order).
func NewTable(name string, rows, dim int, init func() float32) *Table {
	t := &Table{Name: name, Rows: rows, Dim: dim, W: make([]float32, rows*dim), slot: map[int32]int32{}}
	for i := range t.W {
		t.W[i] = init()
	}
	return t
}

// Row returns row i's vector (aliasing W).
func (t *Table) Row(i int32) []float32 { return t.W[int(i)*t.Dim : int(i+1)*t.Dim] }

// AddGrad accumulates g into row i's gradient.
func (t *Table) AddGrad(i int32, g []float32) {
	s, ok := t.slot[i]
	if !ok {
		s = int32(len(t.touched))
		t.slot[i] = s
		t.touched = append(t.touched, i)
		t.grad = append(t.grad, make([]float32, t.Dim)...)
	}
	dst := t.grad[int(s)*t.Dim : int(s+1)*t.Dim]
	for k, v := range g {
		dst[k] += v
	}
}

// Touched calls f for every row with a gradient this step, in first-touch
// order (deterministic for a deterministic batch).
func (t *Table) Touched(f func(row int32, w, g []float32)) {
	for s, r := range t.touched {
		f(r, t.Row(r), t.grad[s*t.Dim:(s+1)*t.Dim])
	}
}

// ZeroGrad forgets this step's gradient.
func (t *Table) ZeroGrad() {
	t.touched = t.touched[:0]
	t.grad = t.grad[:0]
	clear(t.slot)
}
