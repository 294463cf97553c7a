package batch

// Seg is one column block of a gathered input: either rows of a learned
// Table or fixed data copied from the catalog (Table nil).
type Seg struct {
	Name  string
	Off   int
	Width int
	Table *Table
}

// Layout is the column layout of a gathered input.
type Layout struct {
	Segs  []Seg
	Width int
}

// Add appends a segment and returns its index.
func (l *Layout) Add(name string, width int, t *Table) int {
	l.Segs = append(l.Segs, Seg{Name: name, Off: l.Width, Width: width, Table: t})
	l.Width += width
	return len(l.Segs) - 1
}

// Gathered is one batch of a gathered input: Data is rows × Width and Idx
// (rows × segments) holds each table segment's row, −1 where the block is
// fixed data or zero padding (no gradient).
type Gathered struct {
	L    *Layout
	Rows int
	Data []float32
	Idx  []int32
}

// NewGathered allocates a batch buffer.
func NewGathered(l *Layout, rows int) *Gathered {
	return &Gathered{L: l, Rows: rows, Data: make([]float32, rows*l.Width), Idx: make([]int32, rows*len(l.Segs))}
}

// Reset zeroes the data and clears the indices.
func (g *Gathered) Reset() {
	clear(g.Data)
	for i := range g.Idx {
		g.Idx[i] = -1
	}
}

// SetRow copies table row i into segment s of batch row r.
func (g *Gathered) SetRow(r, s int, i int32) {
	seg := g.L.Segs[s]
	copy(g.Data[r*g.L.Width+seg.Off:][:seg.Width], seg.Table.Row(i))
	g.Idx[r*len(g.L.Segs)+s] = i
}

// SetFixed copies fixed values into segment s of batch row r.
func (g *Gathered) SetFixed(r, s int, v []float32) {
	seg := g.L.Segs[s]
	copy(g.Data[r*g.L.Width+seg.Off:][:seg.Width], v)
}

// Scatter adds the gradient of the gathered input (rows × Width) into the
// tables' row gradients.
func (g *Gathered) Scatter(grad []float32) {
	ns := len(g.L.Segs)
	for r := 0; r < g.Rows; r++ {
		for s, seg := range g.L.Segs {
			i := g.Idx[r*ns+s]
			if i < 0 || seg.Table == nil {
				continue
			}
			seg.Table.AddGrad(i, grad[r*g.L.Width+seg.Off:][:seg.Width])
		}
	}
}
