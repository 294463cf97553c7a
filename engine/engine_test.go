package engine_test

import (
	"errors"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

var (
	homeOnce sync.Once
	homeData *batch.Data
	homeL2   *engine.L2
	homeErr  error
)

// homeFeed returns the tiny data and an engine L2 for home_feed (random
// weights, the data's dense statistics), built once.
func homeFeed(t testing.TB) (*batch.Data, *engine.L2) {
	t.Helper()
	homeOnce.Do(func() {
		d := loadData(t, smallConfig(config.ArchMMoEDCN))
		m, err := train.NewL2(d.Cfg, d.Feat, []int{0, 1, 2}, 11)
		if err != nil {
			homeErr = err
			return
		}
		setDense(m.BN, d)
		m.Calib = nil
		path := filepath.Join(t.TempDir(), "l2_home_feed.safetensors")
		if err := train.SaveL2(path, m, 0, nil); err != nil {
			homeErr = err
			return
		}
		homeData = d
		homeL2, homeErr = engine.LoadL2(path, engine.Options{})
	})
	if homeErr != nil {
		t.Fatal(homeErr)
	}
	return homeData, homeL2
}

func run(t testing.TB, m *engine.L2, w *engine.Worker, d *batch.Data, rows []batch.Row) []float32 {
	t.Helper()
	var b engine.Batch
	d.EngineBatch(&b, rows, false)
	nt := len(m.Tasks)
	logits, probs := make([]float32, b.N*nt), make([]float32, b.N*nt)
	if err := m.Run(w, &b, logits, probs); err != nil {
		t.Fatal(err)
	}
	return logits
}

// TestRowsIndependentOfBatch: a row's logits are bit-identical whatever
// the batch it is in (N ∈ {1, 7, 64, 513}) and its position there.
func TestRowsIndependentOfBatch(t *testing.T) {
	d, m := homeFeed(t)
	rows := testRows(d, 0, 513)
	if len(rows) < 513 {
		t.Fatalf("only %d test rows", len(rows))
	}
	nt := len(m.Tasks)
	w := engine.NewWorker()
	all := run(t, m, w, d, rows)
	for _, n := range []int{1, 7, 64} {
		for _, start := range []int{0, 5, 200, 513 - n} {
			got := run(t, m, w, d, rows[start:start+n])
			for i := range got {
				r := start + i/nt
				if math.Float32bits(got[i]) != math.Float32bits(all[r*nt+i%nt]) {
					t.Fatalf("N=%d from %d: row %d task %d is %v alone, %v in the batch of 513", n, start, r, i%nt, got[i], all[r*nt+i%nt])
				}
			}
		}
	}
	// Reversed order: every row at another position.
	rev := make([]batch.Row, len(rows))
	for i, r := range rows {
		rev[len(rows)-1-i] = r
	}
	got := run(t, m, w, d, rev)
	for i := range rows {
		for k := 0; k < nt; k++ {
			if math.Float32bits(got[(len(rows)-1-i)*nt+k]) != math.Float32bits(all[i*nt+k]) {
				t.Fatalf("row %d task %d changes with its position", i, k)
			}
		}
	}
}

// TestBroadcastingMatchesPerRow: rows of one user at two request times
// share contexts per (user, request time) in a batch, and each row equals
// the row scored on its own.
func TestBroadcastingMatchesPerRow(t *testing.T) {
	d, m := homeFeed(t)
	byUser := map[int64][]int32{}
	for _, q := range d.RequestsIn(batch.Test) {
		r := &d.Requests[q]
		if r.Surface == 0 && r.Count > 1 {
			byUser[r.UserID] = append(byUser[r.UserID], q)
		}
	}
	var rows []batch.Row
	for _, qs := range byUser {
		if len(qs) >= 2 && d.Requests[qs[0]].TsMs != d.Requests[qs[1]].TsMs {
			rows = append(train.ImpressionRows(d, qs[:1], []int{0}), train.ImpressionRows(d, qs[1:2], []int{0})...)
			break
		}
	}
	if len(rows) < 4 {
		t.Fatal("no user with two multi-ad home_feed requests at different times")
	}
	var b engine.Batch
	d.EngineBatch(&b, rows, false)
	if b.U != 2 {
		t.Fatalf("%d rows of one user at two times make %d contexts, want 2", len(rows), b.U)
	}
	nt := len(m.Tasks)
	w := engine.NewWorker()
	all := run(t, m, w, d, rows)
	for i := range rows {
		one := run(t, m, w, d, rows[i:i+1])
		for k := 0; k < nt; k++ {
			if math.Float32bits(one[k]) != math.Float32bits(all[i*nt+k]) {
				t.Fatalf("row %d task %d: %v alone, %v broadcast", i, k, one[k], all[i*nt+k])
			}
		}
	}
}

// TestSequenceMatters guards the parity tests against a dead sequence
// path: dropping a context's events changes its rows' logits.
func TestSequenceMatters(t *testing.T) {
	d, m := homeFeed(t)
	rows := testRows(d, 0, 64)
	var b engine.Batch
	d.EngineBatch(&b, rows, false)
	nt := len(m.Tasks)
	w := engine.NewWorker()
	a, p := make([]float32, b.N*nt), make([]float32, b.N*nt)
	if err := m.Run(w, &b, a, p); err != nil {
		t.Fatal(err)
	}
	for c := range b.SeqLen {
		b.SeqLen[c] = 0
	}
	z := make([]float32, b.N*nt)
	if err := m.Run(w, &b, z, p); err != nil {
		t.Fatal(err)
	}
	changed := 0
	for i := range a {
		if math.Abs(float64(a[i]-z[i])) > 1e-4 {
			changed++
		}
	}
	if changed < len(a)/2 {
		t.Fatalf("only %d of %d logits depend on the sequence", changed, len(a))
	}
}

// TestBadInputNamesField: wrong lengths, out-of-range codes, contexts and
// view types, and non-finite values are *InputError naming the field;
// nothing panics.
func TestBadInputNamesField(t *testing.T) {
	d, m := homeFeed(t)
	rows := testRows(d, 0, 8)
	cases := []struct {
		field string
		edit  func(b *engine.Batch)
	}{
		{"user.cats", func(b *engine.Batch) { b.UserCats = b.UserCats[1:] }},
		{"user.cats", func(b *engine.Batch) { b.UserCats[0] = 1 << 20 }},
		{"user.cats", func(b *engine.Batch) { b.UserCats[0] = -1 }},
		{"user.dense", func(b *engine.Batch) { b.UserDense[0] = float32(math.NaN()) }},
		{"user.pretrained", func(b *engine.Batch) { b.Pretrained[3] = float32(math.Inf(1)) }},
		{"seq.len", func(b *engine.Batch) { b.SeqLen[0] = 1000 }},
		{"seq.len", func(b *engine.Batch) { b.SeqLen[0] = -1 }},
		{"seq.content", func(b *engine.Batch) { b.SeqContent = b.SeqContent[:10] }},
		{"seq.content", func(b *engine.Batch) { b.SeqContent[0] = float32(math.NaN()) }},
		{"seq.oov", func(b *engine.Batch) { b.SeqOOV = nil }},
		{"seq.action", func(b *engine.Batch) { b.SeqAction[0] = 99 }},
		{"seq.surface", func(b *engine.Batch) { b.SeqSurface[0] = 3 }},
		{"seq.age", func(b *engine.Batch) { b.SeqAge[0] = 24 }},
		{"row.ctx", func(b *engine.Batch) { b.Ctx[2] = int32(b.U) }},
		{"row.context", func(b *engine.Batch) { b.Context[1] = 1 << 20 }},
		{"row.context_item", func(b *engine.Batch) { b.ContextItem[0] = float32(math.NaN()) }},
		{"row.ad_cats", func(b *engine.Batch) { b.AdCats[3] = 1 << 30 }},
		{"row.ad_content", func(b *engine.Batch) { b.AdContent = append(b.AdContent, 1) }},
		{"row.ad_dense", func(b *engine.Batch) { b.AdDense[0] = float32(math.Inf(-1)) }},
		{"row.view", func(b *engine.Batch) { b.View[0] = 2 }},
		{"U", func(b *engine.Batch) { b.U = -1 }},
	}
	nt := len(m.Tasks)
	for _, c := range cases {
		var b engine.Batch
		d.EngineBatch(&b, rows, false)
		c.edit(&b)
		out := make([]float32, 8*nt)
		err := m.Run(engine.NewWorker(), &b, out, out)
		var ie *engine.InputError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%s: got %v, want an input error naming %s", c.field, err, c.field)
		}
	}
	var b engine.Batch
	d.EngineBatch(&b, rows, false)
	if err := m.Run(engine.NewWorker(), &b, make([]float32, 3), make([]float32, 8*nt)); err == nil {
		t.Error("a short output buffer was accepted")
	}
}

// TestRunAllocatesNothing: after a first call has grown the worker, calls
// of that size or smaller allocate nothing.
func TestRunAllocatesNothing(t *testing.T) {
	d, m := homeFeed(t)
	rows := testRows(d, 0, 100)
	var b engine.Batch
	d.EngineBatch(&b, rows, false)
	nt := len(m.Tasks)
	w := engine.NewWorker()
	l, p := make([]float32, b.N*nt), make([]float32, b.N*nt)
	if err := m.Run(w, &b, l, p); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5, func() { m.Run(w, &b, l, p) }); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}
