package calib

import (
	"math"
	"math/rand/v2"
	"testing"
)

// slice describes synthetic rows of one key.
type slice struct {
	key  Key
	n    int
	a, b float64
}

// build returns synthetic rows for the slices, interleaved at random, and
// the rows of each key in input order.
func build(seed uint64, specs []slice) (Columns, map[Key][2][]float32) {
	rng := rand.New(rand.NewPCG(seed, 3))
	var c Columns
	for i, s := range specs {
		c.Keys = append(c.Keys, s.key)
		for range s.n {
			c.Slice = append(c.Slice, int32(i))
		}
	}
	rng.Shuffle(len(c.Slice), func(i, j int) { c.Slice[i], c.Slice[j] = c.Slice[j], c.Slice[i] })
	by := make(map[Key][2][]float32)
	for _, k := range c.Slice {
		s := specs[k]
		z := float32(1.5 * rng.NormFloat64())
		var y float32
		if rng.Float64() < sigmoid(s.a*float64(z)+s.b) {
			y = 1
		}
		c.Z = append(c.Z, z)
		c.Y = append(c.Y, y)
		r := by[s.key]
		by[s.key] = [2][]float32{append(r[0], z), append(r[1], y)}
	}
	return c, by
}

// pooled returns the rows of the keys that match.
func pooled(by map[Key][2][]float32, match func(Key) bool) (z, y []float32) {
	for k, r := range by {
		if match(k) {
			z = append(z, r[0]...)
			y = append(y, r[1]...)
		}
	}
	return z, y
}

func near(a, b Params, tol float64) bool {
	return math.Abs(a.A-b.A) <= tol && math.Abs(a.B-b.B) <= tol
}

func mustTable(t *testing.T, c Columns, o Options) *Table {
	t.Helper()
	tab, err := FitTable(c, o)
	if err != nil {
		t.Fatalf("FitTable: %v", err)
	}
	return tab
}

func TestShrunk(t *testing.T) {
	p, prior := Params{A: 2, B: -1}, Params{A: 1, B: 1}
	// λ = 100/300 = 1/3: (2 + 1/3)/(4/3) = 1.75, (-1 + 1/3)/(4/3) = -0.5.
	if got, want := Shrunk(p, prior, 100.0/300), (Params{A: 1.75, B: -0.5}); !near(got, want, 1e-15) {
		t.Errorf("Shrunk = %+v, want %+v", got, want)
	}
	if got := Shrunk(p, prior, 0); got != p {
		t.Errorf("Shrunk λ=0 = %+v, want %+v", got, p)
	}
	if got := Shrunk(p, prior, 1e12); !near(got, prior, 1e-11) {
		t.Errorf("Shrunk λ=1e12 = %+v, want %+v", got, prior)
	}
}

var (
	feedA    = Key{"feed", "a", "click"}
	feedB    = Key{"feed", "b", "click"}
	feedC    = Key{"feed", "c", "click"}
	searchA  = Key{"search", "a", "click"}
	feedConv = Key{"feed", "a", "conv"}
)

func TestFitTable(t *testing.T) {
	specs := []slice{
		{feedA, 6000, 1.4, -1},  // ~1700 positives: fitted
		{feedB, 1500, 0.6, -2},  // ~250 positives: fitted, strongly shrunk
		{feedC, 400, 1, -1},     // ~120 positives: surface map
		{searchA, 3000, 0.8, 0}, // the only view type of search
		{feedConv, 3000, 1, -3}, // another task
	}
	c, by := build(7, specs)
	tab := mustTable(t, c, Options{})

	for k, r := range by {
		var pos float64
		for _, v := range r[1] {
			pos += float64(v)
		}
		if tab.Positives[k] != pos {
			t.Errorf("Positives[%v] = %v, want %v", k, tab.Positives[k], pos)
		}
	}
	if pos := tab.Positives[feedC]; pos >= defaultMinPositives {
		t.Fatalf("feedC has %v positives; the test needs fewer than %v", pos, defaultMinPositives)
	}
	if pos := tab.Positives[feedB]; pos < defaultMinPositives {
		t.Fatalf("feedB has %v positives; the test needs at least %v", pos, defaultMinPositives)
	}

	// Surface and global maps are fits over their pooled rows.
	fitOf := func(match func(Key) bool) Params {
		z, y := pooled(by, match)
		return mustFit(t, z, y, nil)
	}
	feedClick := fitOf(func(k Key) bool { return k.Surface == "feed" && k.Task == "click" })
	click := fitOf(func(k Key) bool { return k.Task == "click" })
	for _, tc := range []struct {
		name      string
		got, want Params
	}{
		{"surface feed/click", tab.Surface[[2]string{"feed", "click"}], feedClick},
		{"global click", tab.Global["click"], click},
		{"global conv", tab.Global["conv"], fitOf(func(k Key) bool { return k.Task == "conv" })},
	} {
		if !near(tc.got, tc.want, 1e-9) {
			t.Errorf("%s = %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
	if len(tab.Surface) != 3 || len(tab.Global) != 2 {
		t.Errorf("%d surface maps, %d global maps; want 3, 2", len(tab.Surface), len(tab.Global))
	}

	// Slices with enough positives are fitted and shrunk toward their
	// surface; the rows of a key keep their input order, so the slice fit
	// is bit for bit that of Fit.
	for _, k := range []Key{feedA, feedB} {
		own := mustFit(t, by[k][0], by[k][1], nil)
		want := Shrunk(own, feedClick, defaultShrink/tab.Positives[k])
		if got := tab.Slices[k]; !near(got, want, 1e-9) {
			t.Errorf("Slices[%v] = %+v, want %+v", k, got, want)
		}
		if got := tab.Lookup(k.Surface, k.ViewType, k.Task); got != tab.Slices[k] {
			t.Errorf("Lookup(%v) = %+v, want the slice map %+v", k, got, tab.Slices[k])
		}
	}
	if _, ok := tab.Slices[feedC]; ok {
		t.Errorf("slice %v under MinPositives has its own map", feedC)
	}
	if pos := tab.Positives[feedConv]; pos < defaultMinPositives {
		t.Fatalf("feedConv has %v positives; the test needs at least %v", pos, defaultMinPositives)
	}
	if len(tab.Slices) != 4 {
		t.Errorf("%d slice maps, want 4", len(tab.Slices))
	}

	// Fallbacks.
	for _, tc := range []struct {
		name                    string
		surface, viewType, task string
		want                    Params
	}{
		{"sparse slice", "feed", "c", "click", feedClick},
		{"unknown view type", "feed", "zzz", "click", feedClick},
		{"unknown surface", "zzz", "a", "click", click},
		{"unknown task", "feed", "a", "zzz", Identity},
	} {
		if got := tab.Lookup(tc.surface, tc.viewType, tc.task); !near(got, tc.want, 1e-9) {
			t.Errorf("%s: Lookup = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	var nilTable *Table
	if got := nilTable.Lookup("feed", "a", "click"); got != Identity {
		t.Errorf("nil table Lookup = %+v, want Identity", got)
	}
}

func TestFitTableOptions(t *testing.T) {
	specs := []slice{
		{feedA, 2000, 1.4, -1},
		{feedB, 2000, 0.5, -1},
		{searchA, 2000, 0.8, 0},
	}
	c, by := build(8, specs)

	// GlobalOnly: one map per task for every slice.
	tab := mustTable(t, c, Options{GlobalOnly: true})
	z, y := pooled(by, func(Key) bool { return true })
	want := mustFit(t, z, y, nil)
	if len(tab.Slices) != 0 || len(tab.Surface) != 0 || len(tab.Global) != 1 {
		t.Errorf("GlobalOnly table has %d slice, %d surface, %d global maps; want 0, 0, 1",
			len(tab.Slices), len(tab.Surface), len(tab.Global))
	}
	for _, k := range []Key{feedA, feedB, searchA} {
		if got := tab.Lookup(k.Surface, k.ViewType, k.Task); !near(got, want, 1e-9) {
			t.Errorf("GlobalOnly Lookup(%v) = %+v, want %+v", k, got, want)
		}
	}
	if len(tab.Positives) != 3 {
		t.Errorf("GlobalOnly table has %d positive counts, want 3", len(tab.Positives))
	}

	// No shrinkage: the slice map is the slice's own fit.
	tab = mustTable(t, c, Options{Shrink: -1})
	if got, want := tab.Slices[feedB], mustFit(t, by[feedB][0], by[feedB][1], nil); got != want {
		t.Errorf("Shrink<0: Slices[feedB] = %+v, want %+v", got, want)
	}

	// A threshold above every slice leaves only surface maps; a custom
	// shrink is used as given.
	tab = mustTable(t, c, Options{MinPositives: 1e9})
	if len(tab.Slices) != 0 {
		t.Errorf("MinPositives=1e9: %d slice maps, want 0", len(tab.Slices))
	}
	tab = mustTable(t, c, Options{Shrink: 7})
	surf := tab.Surface[[2]string{"feed", "click"}]
	own := mustFit(t, by[feedA][0], by[feedA][1], nil)
	if got, want := tab.Slices[feedA], Shrunk(own, surf, 7/tab.Positives[feedA]); !near(got, want, 1e-12) {
		t.Errorf("Shrink=7: Slices[feedA] = %+v, want %+v", got, want)
	}
}

func TestFitTableDegenerate(t *testing.T) {
	// A slice with only positives has no fit of its own and falls back to
	// its surface; a task with only negatives has no map at all.
	c := Columns{Keys: []Key{feedA, feedB, feedConv}}
	rng := rand.New(rand.NewPCG(9, 9))
	add := func(k int32, n int, y func(z float64) float32) {
		for range n {
			z := rng.NormFloat64()
			c.Slice = append(c.Slice, k)
			c.Z = append(c.Z, float32(z))
			c.Y = append(c.Y, y(z))
		}
	}
	add(0, 400, func(float64) float32 { return 1 })
	add(1, 2000, func(z float64) float32 {
		if rng.Float64() < sigmoid(z) {
			return 1
		}
		return 0
	})
	add(2, 500, func(float64) float32 { return 0 })
	tab := mustTable(t, c, Options{MinPositives: 10})
	if _, ok := tab.Slices[feedA]; ok {
		t.Error("all-positive slice has a map")
	}
	if _, ok := tab.Slices[feedB]; !ok {
		t.Error("ordinary slice has no map")
	}
	if got, want := tab.Lookup("feed", "a", "click"), tab.Surface[[2]string{"feed", "click"}]; got != want {
		t.Errorf("all-positive slice Lookup = %+v, want surface %+v", got, want)
	}
	if got := tab.Lookup("feed", "a", "conv"); got != Identity {
		t.Errorf("all-negative task Lookup = %+v, want Identity", got)
	}
	if _, ok := tab.Global["conv"]; ok {
		t.Error("all-negative task has a global map")
	}
}

func TestFitTableRepeatedKeys(t *testing.T) {
	// Repeated keys pool their rows; Columnar gives the same table.
	specs := []slice{{feedA, 3000, 1.2, -0.5}, {feedB, 3000, 0.9, -1}}
	c, _ := build(10, specs)
	var samples []Sample
	for i, k := range c.Slice {
		samples = append(samples, Sample{Key: c.Keys[k], Z: c.Z[i], Y: c.Y[i]})
	}
	cs := Columnar(samples)
	if len(cs.Keys) != 2 || len(cs.Z) != len(c.Z) {
		t.Fatalf("Columnar: %d keys, %d rows; want 2, %d", len(cs.Keys), len(cs.Z), len(c.Z))
	}
	split := c
	split.Keys = []Key{feedA, feedB, feedA}
	split.Slice = append([]int32(nil), c.Slice...)
	for i := range split.Slice {
		if split.Slice[i] == 0 && i%2 == 0 {
			split.Slice[i] = 2
		}
	}
	want := mustTable(t, c, Options{})
	for name, in := range map[string]Columns{"columnar": cs, "split keys": split} {
		got := mustTable(t, in, Options{})
		for _, k := range []Key{feedA, feedB} {
			if g, w := got.Lookup(k.Surface, k.ViewType, k.Task), want.Lookup(k.Surface, k.ViewType, k.Task); !near(g, w, 1e-9) {
				t.Errorf("%s: Lookup(%v) = %+v, want %+v", name, k, g, w)
			}
			if got.Positives[k] != want.Positives[k] {
				t.Errorf("%s: Positives[%v] = %v, want %v", name, k, got.Positives[k], want.Positives[k])
			}
		}
	}
}

func TestFitTableErrors(t *testing.T) {
	ok := Columns{Keys: []Key{feedA}, Slice: []int32{0, 0}, Z: []float32{1, -1}, Y: []float32{1, 0}}
	tests := []struct {
		name string
		edit func(c *Columns)
		opts Options
	}{
		{name: "empty", edit: func(c *Columns) { *c = Columns{} }},
		{name: "slice length", edit: func(c *Columns) { c.Slice = c.Slice[:1] }},
		{name: "label length", edit: func(c *Columns) { c.Y = c.Y[:1] }},
		{name: "weight length", edit: func(c *Columns) { c.W = []float32{1} }},
		{name: "slice index", edit: func(c *Columns) { c.Slice = []int32{0, 1} }},
		{name: "negative slice index", edit: func(c *Columns) { c.Slice = []int32{-1, 0} }},
		{name: "no keys", edit: func(c *Columns) { c.Keys = nil }},
		{name: "NaN logit", edit: func(c *Columns) { c.Z = []float32{float32(math.NaN()), 0} }},
		{name: "bad label", edit: func(c *Columns) { c.Y = []float32{2, 0} }},
		{name: "NaN MinPositives", edit: func(*Columns) {}, opts: Options{MinPositives: math.NaN()}},
		{name: "NaN Shrink", edit: func(*Columns) {}, opts: Options{Shrink: math.NaN()}},
	}
	for _, tc := range tests {
		c := ok
		tc.edit(&c)
		if tab, err := FitTable(c, tc.opts); err == nil {
			t.Errorf("%s: no error, table %+v", tc.name, tab)
		}
	}
	if _, err := FitTable(ok, Options{}); err != nil {
		t.Errorf("valid input: %v", err)
	}
}

func BenchmarkFitTable(b *testing.B) {
	var specs []slice
	for _, s := range []string{"feed", "search", "video"} {
		for _, v := range []string{"a", "b", "c", "d"} {
			specs = append(specs, slice{Key{s, v, "click"}, 100_000, 1, -2})
		}
	}
	c, _ := build(11, specs)
	b.ResetTimer()
	for b.Loop() {
		if _, err := FitTable(c, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
