package index

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// testSize returns the base set size, the number of queries and the
// vector dimension of the recall tests.
func testSize() (n, nq, d int) {
	if raceEnabled {
		return 2000, 50, 32
	}
	return 10000, 200, 32
}

// testEf is the beam width of the recall tests. The clusters below are
// isotropic in all 32 dimensions, a hard set: hnswlib with the same M and
// efConstruction gets about the same recall at each ef.
const testEf = 128

// clustered draws n vectors of dimension d around 40 Gaussian centres.
func clustered(n, d int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	const clusters = 40
	centres := make([]float32, clusters*d)
	for i := range centres {
		centres[i] = float32(rng.NormFloat64() * 3)
	}
	out := make([]float32, n*d)
	for i := range n {
		c := rng.IntN(clusters)
		for j := range d {
			out[i*d+j] = centres[c*d+j] + float32(rng.NormFloat64())
		}
	}
	return out
}

// scaled multiplies each row by a random factor in [0.5, 2], so that
// norms differ (what inner-product search is about).
func scaled(v []float32, d int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 9))
	out := make([]float32, len(v))
	for i := 0; i < len(v); i += d {
		f := float32(0.5 + 1.5*rng.Float64())
		for j := range d {
			out[i+j] = v[i+j] * f
		}
	}
	return out
}

func row(v []float32, d, i int) []float32 { return v[i*d : (i+1)*d] }

// recallAt compares results with the exact answer by id.
func recallAt(got, want []Result) float64 {
	if len(want) == 0 {
		return 1
	}
	hit := 0
	for _, r := range got {
		for _, w := range want {
			if r.ID == w.ID {
				hit++
				break
			}
		}
	}
	return float64(hit) / float64(len(want))
}

// measureRecall returns the mean recall@k of the graph against Exact.
func measureRecall(t testing.TB, g *Graph, base, queries []float32, d, k, ef int, metric Metric, filter func(int32) bool, passRate float64) float64 {
	t.Helper()
	s := NewSearcher()
	nq := len(queries) / d
	sum := 0.0
	for i := range nq {
		q := row(queries, d, i)
		got, err := g.SearchWith(q, SearchOptions{K: k, Ef: ef, Filter: filter, PassRate: passRate}, s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Exact(base, d, metric, q, k, filter)
		if err != nil {
			t.Fatal(err)
		}
		sum += recallAt(got, want)
	}
	return sum / float64(nq)
}

var (
	fixtureOnce sync.Once
	fixBase     []float32
	fixQueries  []float32
	fixGraph    *Graph
	fixErr      error
)

// fixture is the L2 graph most tests share, built serially.
func fixture(t testing.TB) (*Graph, []float32, []float32, int) {
	t.Helper()
	n, nq, d := testSize()
	fixtureOnce.Do(func() {
		fixBase = clustered(n, d, 1)
		fixQueries = clustered(nq, d, 2)
		fixGraph, fixErr = Build(fixBase, d, Config{M: 16, EfConstruction: 100, Metric: L2, Seed: 42}, 1)
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fixGraph, fixBase, fixQueries, d
}

func TestRecallL2(t *testing.T) {
	g, base, queries, d := fixture(t)
	r := measureRecall(t, g, base, queries, d, 10, testEf, L2, nil, 0)
	t.Logf("L2 recall@10 (ef %d) = %.4f, levels %d", testEf, r, g.Levels())
	if r < 0.95 {
		t.Errorf("L2 recall@10 = %.4f, want ≥ 0.95", r)
	}
}

func TestRecallMetrics(t *testing.T) {
	n, nq, d := testSize()
	base := scaled(clustered(n, d, 3), d, 4)
	queries := scaled(clustered(nq, d, 5), d, 6)
	for _, tc := range []struct {
		metric Metric
		ef     int     // the beam the recall is asserted at
		want   float64 // 0: measured only
	}{
		{Cosine, 2 * testEf, 0.95},
		// The transform puts every base vector on one sphere and the
		// query far from it; on this set the graph needs a wide beam.
		{InnerProduct, 1024, 0.95},
		{RawIP, 1024, 0},
	} {
		t.Run(tc.metric.String(), func(t *testing.T) {
			g, err := Build(base, d, Config{M: 16, EfConstruction: 100, Metric: tc.metric, Seed: 1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, ef := range []int{testEf, tc.ef} {
				r := measureRecall(t, g, base, queries, d, 10, ef, tc.metric, nil, 0)
				t.Logf("%v recall@10 (ef %d) = %.4f", tc.metric, ef, r)
				if ef == tc.ef && r < tc.want {
					t.Errorf("%v recall@10 (ef %d) = %.4f, want ≥ %.2f", tc.metric, ef, r, tc.want)
				}
			}
		})
	}
}

func TestScoresMatchExact(t *testing.T) {
	n, _, d := testSize()
	n = min(n, 2000)
	base := scaled(clustered(n, d, 11), d, 12)
	q := row(clustered(1, d, 13), d, 0)
	for _, metric := range []Metric{L2, Cosine, InnerProduct, RawIP} {
		g, err := Build(base, d, Config{Metric: metric, Seed: 5}, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.SearchExact(q, 10, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Exact(base, d, metric, q, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 || len(want) != 10 {
			t.Fatalf("%v: %d and %d results", metric, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID {
				t.Errorf("%v: rank %d: id %d, exact %d", metric, i, got[i].ID, want[i].ID)
			}
			if diff := math.Abs(float64(got[i].Score - want[i].Score)); diff > 1e-4*(1+math.Abs(float64(want[i].Score))) {
				t.Errorf("%v: rank %d: score %v, exact %v", metric, i, got[i].Score, want[i].Score)
			}
			if i > 0 && better(metric, got[i].Score, got[i-1].Score) {
				t.Errorf("%v: results not best first at rank %d", metric, i)
			}
		}
	}
}

func better(m Metric, a, b float32) bool {
	if m.higherIsBetter() {
		return a > b
	}
	return a < b
}

func TestDeterministicBuild(t *testing.T) {
	n, _, d := testSize()
	n = min(n, 3000)
	base := clustered(n, d, 21)
	cfg := Config{M: 8, EfConstruction: 64, Metric: L2, Seed: 99}
	var enc [2][]byte
	for i := range enc {
		g, err := Build(base, d, cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		if enc[i], err = g.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(enc[0], enc[1]) {
		t.Fatal("two serial builds with the same seed differ")
	}
	cfg.Seed = 100
	g, err := Build(base, d, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := g.MarshalBinary()
	if bytes.Equal(enc[0], other) {
		t.Error("a different seed gave the same graph")
	}
}

func TestParallelBuildRecall(t *testing.T) {
	g0, base, queries, d := fixture(t)
	g, err := Build(base, d, g0.Config(), 4)
	if err != nil {
		t.Fatal(err)
	}
	r0 := measureRecall(t, g0, base, queries, d, 10, testEf, L2, nil, 0)
	r := measureRecall(t, g, base, queries, d, 10, testEf, L2, nil, 0)
	t.Logf("recall@10: serial %.4f, parallel %.4f", r0, r)
	if r < 0.95 || r < r0-0.02 {
		t.Errorf("parallel build recall %.4f, serial %.4f", r, r0)
	}
}

func TestConcurrentSearch(t *testing.T) {
	g, _, queries, d := fixture(t)
	nq := len(queries) / d
	// The answers of one goroutine are the reference.
	s := NewSearcher()
	want := make([][]Result, nq)
	for i := range nq {
		r, err := g.Search(row(queries, d, i), 10, 50, nil, s)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = append([]Result(nil), r...)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 8 {
		wg.Go(func() {
			s := NewSearcher()
			for j := range nq {
				i := (j + w*7) % nq
				var filter func(int32) bool
				if w%2 == 1 {
					filter = func(id int32) bool { return id%2 == 0 }
				}
				got, err := g.Search(row(queries, d, i), 10, 50, filter, s)
				if err != nil {
					errs <- err.Error()
					return
				}
				if filter == nil && !equalResults(got, want[i]) {
					errs <- "concurrent search gave a different answer"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func equalResults(a, b []Result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSearchAllocs(t *testing.T) {
	g, _, queries, d := fixture(t)
	s := NewSearcher()
	q := row(queries, d, 0)
	filter := func(id int32) bool { return id%3 != 0 }
	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"plain", func() { g.Search(q, 10, 64, nil, s) }},
		{"filter", func() { g.Search(q, 10, 64, filter, s) }},
		{"scan", func() {
			g.SearchWith(q, SearchOptions{K: 10, Ef: 64, Filter: filter, PassRate: 0.001}, s)
		}},
		{"exact", func() { g.SearchExact(q, 10, nil, s) }},
	} {
		tc.run()
		if a := testing.AllocsPerRun(50, tc.run); a != 0 {
			t.Errorf("%s: %v allocations per search, want 0", tc.name, a)
		}
	}
}

func TestFilteredRecall(t *testing.T) {
	g, base, queries, d := fixture(t)
	for _, rate := range []float64{0.5, 0.1, 0.01} {
		// A pseudo-random subset of the given share.
		mod := uint64(math.Round(1 / rate))
		filter := func(id int32) bool { return mix64(uint64(id)+12345)%mod == 0 }
		for _, hint := range []float64{0, rate} {
			s := NewSearcher()
			exact := 0
			nq := len(queries) / d
			sum := 0.0
			for i := range nq {
				q := row(queries, d, i)
				got, err := g.SearchWith(q, SearchOptions{K: 10, Ef: testEf, Filter: filter, PassRate: hint}, s)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range got {
					if !filter(r.ID) {
						t.Fatalf("result %d does not pass the filter", r.ID)
					}
				}
				if s.Stats().Exact {
					exact++
				}
				want, _ := Exact(base, d, L2, q, 10, filter)
				sum += recallAt(got, want)
			}
			r := sum / float64(nq)
			t.Logf("pass rate %.2f, hint %.2f: recall@10 %.4f, exact scans %d/%d", rate, hint, r, exact, nq)
			if r < 0.95 {
				t.Errorf("pass rate %.2f, hint %.2f: recall@10 = %.4f, want ≥ 0.95", rate, hint, r)
			}
		}
	}
}

// TestFilteredTraversal measures the filtered graph search alone, without
// the exact-scan fallback.
func TestFilteredTraversal(t *testing.T) {
	g, base, queries, d := fixture(t)
	for _, rate := range []float64{0.5, 0.1} {
		mod := uint64(math.Round(1 / rate))
		filter := func(id int32) bool { return mix64(uint64(id)+999)%mod == 0 }
		s := NewSearcher()
		s.graphOnly = true
		nq := len(queries) / d
		sum := 0.0
		for i := range nq {
			q := row(queries, d, i)
			got, err := g.Search(q, 10, testEf, filter, s)
			if err != nil {
				t.Fatal(err)
			}
			if s.Stats().Exact {
				t.Fatal("exact scan with the fallback off")
			}
			for _, r := range got {
				if !filter(r.ID) {
					t.Fatalf("result %d does not pass the filter", r.ID)
				}
			}
			want, _ := Exact(base, d, L2, q, 10, filter)
			sum += recallAt(got, want)
		}
		r := sum / float64(nq)
		t.Logf("pass rate %.2f, graph only: recall@10 %.4f", rate, r)
		if r < 0.95 {
			t.Errorf("pass rate %.2f, graph only: recall@10 = %.4f, want ≥ 0.95", rate, r)
		}
	}
}

func TestFilterNonePass(t *testing.T) {
	g, _, queries, d := fixture(t)
	got, err := g.Search(row(queries, d, 0), 5, 20, func(int32) bool { return false }, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want no results", got, err)
	}
	got, err = g.Search(row(queries, d, 0), 5, 20, func(id int32) bool { return id == 17 }, nil)
	if err != nil || len(got) != 1 || got[0].ID != 17 {
		t.Fatalf("got %v, %v; want only id 17", got, err)
	}
}

func TestSmallGraphs(t *testing.T) {
	for n := range 6 {
		base := clustered(n, 5, uint64(n))
		for _, metric := range []Metric{L2, Cosine, InnerProduct, RawIP} {
			g, err := Build(base, 5, Config{Metric: metric}, 1)
			if err != nil {
				t.Fatal(err)
			}
			q := []float32{1, 2, 3, 4, 5}
			got, err := g.Search(q, 10, 0, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Errorf("n=%d %v: %d results", n, metric, len(got))
			}
			want, _ := Exact(base, 5, metric, q, 10, nil)
			if recallAt(got, want) != 1 {
				t.Errorf("n=%d %v: got %v want %v", n, metric, got, want)
			}
			enc, _ := g.MarshalBinary()
			if _, err := Unmarshal(enc); err != nil {
				t.Errorf("n=%d %v: %v", n, metric, err)
			}
		}
	}
}

func TestDuplicates(t *testing.T) {
	d := 8
	base := make([]float32, 500*d)
	for i := range base {
		base[i] = float32(i % 3)
	}
	g, err := Build(base, d, Config{M: 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Search(make([]float32, d), 10, 10, nil, nil)
	if err != nil || len(got) != 10 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestBadInput(t *testing.T) {
	good := clustered(20, 4, 1)
	nan := append([]float32(nil), good...)
	nan[13] = float32(math.NaN())
	inf := append([]float32(nil), good...)
	inf[2] = float32(math.Inf(-1))
	zero := append([]float32(nil), good...)
	clear(zero[8:12])
	for _, tc := range []struct {
		name string
		vecs []float32
		dim  int
		cfg  Config
		want string
	}{
		{"dim 0", good, 0, Config{}, "dim"},
		{"dim < 0", good, -3, Config{}, "dim"},
		{"ragged", good[:len(good)-1], 4, Config{}, "multiple"},
		{"NaN", nan, 4, Config{}, "vector 3 column 1"},
		{"Inf", inf, 4, Config{}, "vector 0 column 2"},
		{"zero cosine", zero, 4, Config{Metric: Cosine}, "vector 2 is zero"},
		{"huge", []float32{3e38, 3e38}, 2, Config{}, "overflows"},
		{"M", good, 4, Config{M: 1}, "Config.M"},
		{"M big", good, 4, Config{M: 100000}, "Config.M"},
		{"efc", good, 4, Config{EfConstruction: -1}, "EfConstruction"},
		{"metric", good, 4, Config{Metric: 9}, "Metric"},
	} {
		g, err := Build(tc.vecs, tc.dim, tc.cfg, 1)
		if err == nil || g != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Build gave %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}

	g, err := Build(good, 4, Config{Metric: Cosine}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    []float32
		o    SearchOptions
		want string
	}{
		{"short", []float32{1, 2, 3}, SearchOptions{K: 3}, "query has 3 values"},
		{"long", []float32{1, 2, 3, 4, 5}, SearchOptions{K: 3}, "query has 5 values"},
		{"nil", nil, SearchOptions{K: 3}, "query has 0 values"},
		{"NaN", []float32{1, float32(math.NaN()), 3, 4}, SearchOptions{K: 3}, "column 1"},
		{"Inf", []float32{1, 2, float32(math.Inf(1)), 4}, SearchOptions{K: 3}, "column 2"},
		{"zero", []float32{0, 0, 0, 0}, SearchOptions{K: 3}, "zero query"},
		{"k 0", []float32{1, 2, 3, 4}, SearchOptions{K: 0}, "k = 0"},
		{"k < 0", []float32{1, 2, 3, 4}, SearchOptions{K: -1}, "k = -1"},
		{"ef < 0", []float32{1, 2, 3, 4}, SearchOptions{K: 1, Ef: -1}, "ef = -1"},
	} {
		for _, s := range []*Searcher{nil, NewSearcher()} {
			res, err := g.SearchWith(tc.q, tc.o, s)
			if err == nil || res != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Search gave %v, %v; want an error mentioning %q", tc.name, res, err, tc.want)
			}
		}
		if tc.o.Ef >= 0 {
			if _, err := g.SearchExact(tc.q, tc.o.K, nil, nil); err == nil {
				t.Errorf("%s: SearchExact gave no error", tc.name)
			}
			if _, err := Exact(good, 4, Cosine, tc.q, tc.o.K, nil); err == nil {
				t.Errorf("%s: Exact gave no error", tc.name)
			}
		}
	}
	var nilGraph *Graph
	if _, err := nilGraph.Search([]float32{1}, 1, 1, nil, nil); err == nil {
		t.Error("search of a nil graph gave no error")
	}
	for _, tc := range []struct {
		name string
		vecs []float32
		dim  int
		m    Metric
	}{
		{"dim 0", good, 0, L2},
		{"ragged", good[:5], 4, L2},
		{"metric", good, 4, Metric(-1)},
	} {
		if _, err := Exact(tc.vecs, tc.dim, tc.m, []float32{1, 2, 3, 4}, 1, nil); err == nil {
			t.Errorf("Exact %s: no error", tc.name)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	n, _, d := testSize()
	n = min(n, 2000)
	base := scaled(clustered(n, d, 31), d, 32)
	queries := clustered(20, d, 33)
	for _, metric := range []Metric{L2, Cosine, InnerProduct, RawIP} {
		g, err := Build(base, d, Config{M: 12, EfConstruction: 60, Metric: metric, Seed: 3}, 0)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var h Graph
		if err := h.UnmarshalBinary(enc); err != nil {
			t.Fatalf("%v: %v", metric, err)
		}
		again, _ := h.MarshalBinary()
		if !bytes.Equal(enc, again) {
			t.Errorf("%v: re-encoding differs", metric)
		}
		if h.Config() != g.Config() || h.Len() != n || h.Dim() != d || h.Levels() != g.Levels() {
			t.Errorf("%v: decoded %+v n=%d d=%d levels=%d", metric, h.Config(), h.Len(), h.Dim(), h.Levels())
		}
		s1, s2 := NewSearcher(), NewSearcher()
		for i := range 20 {
			a, _ := g.Search(row(queries, d, i), 10, 40, nil, s1)
			b, _ := h.Search(row(queries, d, i), 10, 40, nil, s2)
			if !equalResults(a, b) {
				t.Fatalf("%v: decoded graph answers differently", metric)
			}
		}
	}
}

// fixCRC rewrites the trailing checksum so that corruption reaches the
// structural checks.
func fixCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func smallEncoded(t testing.TB) []byte {
	base := clustered(60, 6, 41)
	g, err := Build(base, 6, Config{M: 4, EfConstruction: 20, Metric: InnerProduct, Seed: 8}, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestUnmarshalCorrupt(t *testing.T) {
	enc := smallEncoded(t)
	var g Graph
	for l := range len(enc) {
		if err := g.UnmarshalBinary(enc[:l]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", l)
		}
		if err := g.UnmarshalBinary(fixCRC(enc[:l])); err == nil {
			t.Fatalf("truncated to %d bytes, checksum fixed: no error", l)
		}
	}
	if err := g.UnmarshalBinary(append(enc[:len(enc):len(enc)], 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	if err := g.UnmarshalBinary(fixCRC(append(enc[:len(enc)-4:len(enc)-4], 0, 0, 0, 0, 0))); err == nil {
		t.Error("trailing byte, checksum fixed: no error")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := append([]byte(nil), enc...)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		if err := g.UnmarshalBinary(b); err == nil {
			t.Fatal("corrupt bytes passed the checksum")
		}
		checkDecoded(t, fixCRC(b))
	}
	for _, tc := range []struct {
		name string
		off  int
		val  uint32
		want string
	}{
		{"magic", 0, 0, "magic"},
		{"version", 8, 2, "version 2"},
		{"metric", 12, 7, "metric"},
		{"dim", 16, 0, "dim"},
		{"n", 20, 1 << 30, "cannot hold"},
		{"m", 24, 1, "m = 1"},
		{"entry", 40, 1000, "entry"},
		{"maxLevel", 44, 99, "maxLevel"},
	} {
		b := append([]byte(nil), enc...)
		binary.LittleEndian.PutUint32(b[tc.off:], tc.val)
		err := g.UnmarshalBinary(fixCRC(b))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// checkDecoded decodes b; whatever it accepts must be searchable.
func checkDecoded(t testing.TB, b []byte) {
	g, err := Unmarshal(b)
	if err != nil {
		return
	}
	q := make([]float32, g.Dim())
	for i := range q {
		q[i] = float32(i%5) - 2
	}
	if g.Metric() == Cosine {
		q[0] = 1
	}
	if _, err := g.Search(q, 5, 10, nil, nil); err != nil {
		t.Fatalf("search of a decoded graph: %v", err)
	}
	if _, err := g.Search(q, 5, 10, func(id int32) bool { return id%2 == 0 }, nil); err != nil {
		t.Fatalf("filtered search of a decoded graph: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(smallEncoded(f))
	f.Add([]byte(codecMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecoded(t, b)
		checkDecoded(t, fixCRC(b))
	})
}

func TestKernelsMatchTwins(t *testing.T) {
	if !hasAsm {
		t.Skip("no assembly kernels in this build")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, stride := range []int{8, 16, 24, 32, 40, 784, 792} {
		n := 23
		vecs := make([]float32, n*stride)
		for i := range vecs {
			vecs[i] = float32(rng.NormFloat64())
		}
		q := make([]float32, stride)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		for cnt := range 12 {
			ids := make([]int32, cnt)
			for i := range ids {
				ids[i] = int32(rng.IntN(n))
			}
			got := make([]float32, cnt)
			want := make([]float32, cnt)
			for _, sq := range []bool{false, true} {
				rowsIdx(got, q, vecs, ids, stride, sq)
				rowsIdxGo(want, q, vecs, ids, stride, sq)
				for i := range got {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*float64(stride) {
						t.Errorf("stride %d sq %v: rowsIdx[%d] = %v, twin %v", stride, sq, i, got[i], want[i])
					}
				}
			}
		}
		a, b := vecs[:stride], vecs[stride:2*stride]
		if got, want := dot(a, b), dotGo(a, b); math.Abs(float64(got-want)) > 1e-4*math.Sqrt(float64(stride)) {
			t.Errorf("stride %d: dot = %v, twin %v", stride, got, want)
		}
		if got, want := l2(a, b), l2Go(a, b); math.Abs(float64(got-want)) > 1e-4*float64(stride) {
			t.Errorf("stride %d: l2 = %v, twin %v", stride, got, want)
		}
	}
}

// TestPureGo runs a search with the pure-Go kernels and checks it against
// the assembly's answer.
func TestPureGo(t *testing.T) {
	g, _, queries, d := fixture(t)
	q := row(queries, d, 1)
	want, _ := g.Search(q, 10, 64, nil, nil)
	old := useAsm
	useAsm = false
	defer func() { useAsm = old }()
	got, _ := g.Search(q, 10, 64, nil, nil)
	if recallAt(got, want) < 0.9 {
		t.Errorf("pure-Go search %v, assembly %v", got, want)
	}
}
