package batch

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/feature"
	"github.com/tandemml/tandem/sim"
)

var tinyDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-batch-")
	if err != nil {
		panic(err)
	}
	tinyDir = filepath.Join(dir, "tiny")
	if _, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: tinyDir, Scale: "tiny", Seed: 2, Format: data.FormatJSONL}); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func load(t *testing.T, dir string) (*Data, error) {
	t.Helper()
	cfg, man, err := DataConfig(dir, config.Default(), false)
	if err != nil {
		return nil, err
	}
	return Load(dir, cfg, man)
}

// TestScatterIsGatherAdjoint: ⟨gather(W), G⟩ = ⟨W, scatter(G)⟩ for random
// tables, indices and gradients — the identity backprop through a gather
// relies on.
func TestScatterIsGatherAdjoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	init := func() float32 { return float32(rng.NormFloat64()) }
	a, b := NewTable("a", 5, 3, init), NewTable("b", 4, 2, init)
	var l Layout
	l.Add("a", 3, a)
	l.Add("fixed", 2, nil)
	l.Add("b", 2, b)
	g := NewGathered(&l, 7)
	g.Reset()
	for r := 0; r < 7; r++ {
		g.SetRow(r, 0, int32(rng.IntN(5)))
		g.SetFixed(r, 1, []float32{init(), init()})
		if r%3 != 0 { // some rows leave b empty (padding): no gradient
			g.SetRow(r, 2, int32(rng.IntN(4)))
		}
	}
	grad := make([]float32, len(g.Data))
	var lhs float64
	for i := range grad {
		grad[i] = init()
	}
	for r := 0; r < 7; r++ {
		for s, seg := range l.Segs {
			if seg.Table == nil || g.Idx[r*len(l.Segs)+s] < 0 {
				continue
			}
			for k := 0; k < seg.Width; k++ {
				lhs += float64(g.Data[r*l.Width+seg.Off+k]) * float64(grad[r*l.Width+seg.Off+k])
			}
		}
	}
	g.Scatter(grad)
	var rhs float64
	for _, tb := range []*Table{a, b} {
		tb.Touched(func(row int32, w, gr []float32) {
			for k := range w {
				rhs += float64(w[k]) * float64(gr[k])
			}
		})
	}
	if math.Abs(lhs-rhs) > 1e-4*math.Abs(lhs)+1e-6 {
		t.Fatalf("⟨gather W, G⟩ = %v, ⟨W, scatter G⟩ = %v", lhs, rhs)
	}
	a.ZeroGrad()
	n := 0
	a.Touched(func(int32, []float32, []float32) { n++ })
	if n != 0 {
		t.Fatal("ZeroGrad left touched rows")
	}
}

// TestBNNormalize checks training (batch statistics, live rows only, EMA)
// and serving (clamp x to μ ± c·√max(σ², v_min), then normalise).
func TestBNNormalize(t *testing.T) {
	m := config.Default().Model
	m.BNClamp, m.BNVarMin, m.BNMomentum = 2, 0.01, 0.5
	bn := NewBN(1, m)
	x := []float32{1, 2, 3, 1000} // the last row is padding
	live := []bool{true, true, true, false}
	bn.Normalize(x, 4, live, true)
	sd := math.Sqrt(2.0 / 3)
	for i, want := range []float64{-1 / sd, 0, 1 / sd, 2} {
		if math.Abs(float64(x[i])-want) > 1e-5 {
			t.Fatalf("train x̂[%d] = %v, want %v", i, x[i], want)
		}
	}
	if bn.Mean[0] != 2 || math.Abs(bn.Var[0]-2.0/3) > 1e-12 || !bn.Seen {
		t.Fatalf("first batch sets the statistics: %v", bn)
	}
	y := []float32{4, 6, 8}
	bn.Normalize(y, 3, []bool{true, true, true}, true)
	if math.Abs(bn.Mean[0]-4) > 1e-12 { // 2 + 0.5·(6−2)
		t.Fatalf("EMA mean %v, want 4", bn.Mean[0])
	}
	// Serving: clamp to μ ± c·sd with running statistics, then normalise.
	s := []float32{4, 1e6, float32(math.NaN())}
	bn.Normalize(s, 3, nil, false)
	if s[0] != 0 || math.Abs(float64(s[1])-2) > 1e-6 {
		t.Fatalf("serving x̂ = %v", s)
	}
	if s[2] != 0 {
		t.Fatalf("NaN input normalised to %v, want 0", s[2])
	}
	// A non-finite batch never enters the running statistics.
	before := bn.Mean[0]
	z := []float32{float32(math.Inf(1)), 1}
	bn.Normalize(z, 2, []bool{true, true}, true)
	if bn.Mean[0] != before {
		t.Fatal("an infinite batch moved the running mean")
	}
}

func TestAgeBucketAndCodes(t *testing.T) {
	for _, c := range []struct {
		dt   int64
		want int32
	}{{-5, 0}, {0, 0}, {59_999, 0}, {60_000, 1}, {180_000, 2}, {1 << 62, 23}} {
		if got := AgeBucket(c.dt, 24); got != c.want {
			t.Errorf("AgeBucket(%d) = %d, want %d", c.dt, got, c.want)
		}
	}
	h := config.Feature{Name: "x", Kind: config.KindCategorical, HashBuckets: 64}
	if CodeInt(h, 5) != 5 || CodeInt(h, -1) != 63 || CodeInt(h, 64) != 0 {
		t.Error("hashed integer codes are v mod buckets, non-negative")
	}
	v := config.Feature{Name: "y", Kind: config.KindCategorical, Vocab: []string{"a", "b"}}
	if CodeString(v, "b") != 2 || CodeString(v, "zzz") != 0 || CatRows(v) != 3 {
		t.Error("vocab codes are index+1 with 0 for out-of-vocabulary")
	}
}

// TestSeqFillMatchesAsOf: the feeder's tokens are the as-of sequence
// (newest first), with masks that match the length.
func TestSeqFillMatchesAsOf(t *testing.T) {
	d, err := load(t, tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSparse("t", d.Cfg, d.Feat, 1, true, true, true, true)
	f := NewSeq(d, s, 1)
	checked := 0
	for i := 0; i < len(d.Requests); i += 97 {
		req := &d.Requests[i]
		f.Fill(0, req, false, nil)
		want := d.Seq.Sequence(nil, req.UserID, req.TsMs, f.L)
		var hist []feature.Event
		hist = feature.AsOf(hist, d.Seq.History(req.UserID), req.TsMs, f.L)
		if len(want) != len(hist) || f.Len(0) != len(want) {
			t.Fatalf("request %d: %d events, as-of says %d, feeder %d", req.ID, len(want), len(hist), f.Len(0))
		}
		for j := 0; j < f.L; j++ {
			row := j
			act := f.Tok.Idx[row*len(f.Tok.L.Segs)+1]
			if j < len(want) {
				if act != int32(want[j].Action) || f.Tok.Idx[row*len(f.Tok.L.Segs)+2] != int32(want[j].Surface) {
					t.Fatalf("request %d position %d: action/surface rows %d/%d, want %d/%d", req.ID, j, act, f.Tok.Idx[row*len(f.Tok.L.Segs)+2], want[j].Action, want[j].Surface)
				}
				if want[j].TsMs >= req.TsMs {
					t.Fatalf("request %d: event at %d not before the request at %d", req.ID, want[j].TsMs, req.TsMs)
				}
			} else if act != -1 {
				t.Fatalf("request %d: padding position %d has an action row", req.ID, j)
			}
			wantMask := float32(0)
			if j >= max(1, len(want)) {
				wantMask = -1e9
			}
			if f.Mask[j] != wantMask {
				t.Fatalf("request %d key %d: mask %v, want %v", req.ID, j, f.Mask[j], wantMask)
			}
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d requests checked", checked)
	}
}

// rewrite replaces one table of a copy of the tiny data set.
func rewrite[T any](t *testing.T, table string, edit func([]T) []T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dir, os.DirFS(tinyDir)); err != nil {
		t.Fatal(err)
	}
	rows, err := data.ReadAll[T](dir, table)
	if err != nil {
		t.Fatal(err)
	}
	rows = edit(rows)
	path, _, err := data.TablePath(dir, table)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	w, err := data.Create[T](dir, table, data.FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadRejectsBadData: inconsistent tables are errors naming the file
// and the offending id, never a panic.
func TestLoadRejectsBadData(t *testing.T) {
	cases := []struct {
		name, want string
		dir        func(t *testing.T) string
	}{
		{"unknown ad in impressions", "unknown ad_id 999999999", func(t *testing.T) string {
			return rewrite(t, data.TableImpressions, func(r []data.Impression) []data.Impression { r[3].AdID = 999999999; return r })
		}},
		{"unknown user in requests", "unknown user_id 777777", func(t *testing.T) string {
			return rewrite(t, data.TableRequests, func(r []data.Request) []data.Request { r[0].UserID = 777777; return r })
		}},
		{"short content_emb", "content_emb has 3 values", func(t *testing.T) string {
			return rewrite(t, data.TableItems, func(r []data.Item) []data.Item { r[5].ContentEmb = r[5].ContentEmb[:3]; return r })
		}},
		{"short pretrained_emb", "pretrained_emb has 0 values", func(t *testing.T) string {
			return rewrite(t, data.TableUsers, func(r []data.User) []data.User { r[1].PretrainedEmb = nil; return r })
		}},
		{"duplicate ad", "repeats", func(t *testing.T) string {
			return rewrite(t, data.TableAds, func(r []data.Ad) []data.Ad { return append(r, r[0]) })
		}},
		{"unknown surface", "unknown surface", func(t *testing.T) string {
			return rewrite(t, data.TableRequests, func(r []data.Request) []data.Request { r[2].Surface = "inbox"; return r })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			_, err := load(t, dir)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %v, want one naming %q and the file", err, c.want)
			}
		})
	}
}

func TestResolveFeaturesRejectsUnknown(t *testing.T) {
	cfg := config.Default()
	cfg.Features.User = append(cfg.Features.User, config.Feature{Name: "shoe_size", Kind: config.KindDense})
	_, err := ResolveFeatures(cfg)
	if err == nil || !strings.Contains(err.Error(), `"shoe_size"`) || !strings.Contains(err.Error(), "features.user[6]") {
		t.Fatalf("error %v, want one naming features.user[6] shoe_size", err)
	}
}

// TestFeederRejectsOversizedBatch: more rows or contexts than the graph
// takes is an error, not an index panic.
func TestFeederRejectsOversizedBatch(t *testing.T) {
	d, err := load(t, tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSparse("t", d.Cfg, d.Feat, 1, true, true, true, true)
	f := NewL2Feeder(d, s, NewBN(5, d.Cfg.Model), 4, 1, false)
	var rows []Row
	for i := 0; i < 2; i++ { // two requests of different users: two contexts
		r := &d.Requests[i*50]
		rows = append(rows, Row{Req: int32(i * 50), AdRow: d.Imps[r.First].AdRow, Weight: 1})
	}
	if err := f.Fill(rows, false, nil); err == nil || !strings.Contains(err.Error(), "contexts") {
		t.Fatalf("two contexts into one: %v", err)
	}
	if err := f.Fill(append(append(rows, rows...), rows[0]), false, nil); err == nil || !strings.Contains(err.Error(), "rows") {
		t.Fatalf("five rows into four: %v", err)
	}
	l1 := NewL1Feeder(d, s, s, NewBN(2, d.Cfg.Model), NewBN(3, d.Cfg.Model), 4, 1)
	if err := l1.Fill(rows, false, nil); err == nil || !strings.Contains(err.Error(), "requests") {
		t.Fatalf("two requests into one: %v", err)
	}
}
