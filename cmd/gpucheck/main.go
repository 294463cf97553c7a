// Command gpucheck verifies tandem's GPU backend on a GPU host and times
// it: it opens the device, builds (or reads) a deployment, compares the
// device user towers with the CPU engine per output and precision, compares
// exact retrieval on the device with the CPU's exact scan, times both per
// batch bucket, and writes one JSON report. Build it with CGO_ENABLED=0 and
// copy the binary; it needs no Go toolchain and no CUDA toolkit there.
//
//	gpucheck [-db DBDIR] [-out report.json] [-precisions fp32,tf32,bf16] [-ads 1000000]
//
// Exit status 1 when a parity check fails, 2 when the device cannot be
// opened.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
	"github.com/tandemml/tandem/internal/fixture"
	"github.com/tandemml/tandem/snapshot"
)

// Parity limits per precision (p99 |Δlogit|), docs/GPU.md.
var limits = map[string]float64{"fp32": 1e-5, "tf32": 1e-3, "bf16": 0.05}

// Per-layer limits on max |Δ| / max(1, max |CPU|): a diagnostic that names
// the first layer where the device leaves the CPU engine.
var layerLimits = map[string]float64{"fp32": 1e-4, "tf32": 1e-2, "bf16": 0.05}

type report struct {
	Device    gpu.Info           `json:"device"`
	Snapshot  string             `json:"snapshot"`
	Kernels   []kernels.Result   `json:"kernels"`
	Parity    []parity           `json:"parity"`
	Layers    []layerCheck       `json:"layers"`
	Exact     []exactCheck       `json:"exact"`
	Timings   []timing           `json:"timings"`
	Failures  []string           `json:"failures"`
	Tolerance map[string]float64 `json:"p99_abs_logit_limits"`
	LayerTol  map[string]float64 `json:"layer_rel_limits"`
}

type layerCheck struct {
	Precision string `json:"precision"`
	Route     string `json:"route"`
	gpu.LayerDiff
	OK bool `json:"ok"`
}

type parity struct {
	// Path is "tower" (the device's u_t dotted with a_t on the host) or
	// "score" (UserTower.Score: tower and dot products on the device).
	Path      string  `json:"path"`
	Precision string  `json:"precision"`
	Route     string  `json:"route"`
	Task      string  `json:"task"`
	Logits    int     `json:"logits"`
	P99Abs    float64 `json:"p99_abs_logit"`
	MaxAbs    float64 `json:"max_abs_logit"`
	OK        bool    `json:"ok"`
}

type exactCheck struct {
	Route   string  `json:"route"`
	Queries int     `json:"queries"`
	K       int     `json:"k"`
	Overlap float64 `json:"overlap"`
	OK      bool    `json:"ok"`
}

type timing struct {
	What      string `json:"what"`
	Precision string `json:"precision,omitempty"`
	Batch     int    `json:"batch"`
	// Candidates per context, for "l1_score" timings.
	Candidates int     `json:"candidates_per_context,omitempty"`
	Calls      int     `json:"calls"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	PerSecond  float64 `json:"rows_per_second"`
}

func main() {
	db := flag.String("db", "", "snapshot directory (default: build a tiny deployment in a temporary directory)")
	out := flag.String("out", "gpucheck.json", "report file")
	precs := flag.String("precisions", "fp32,tf32,bf16", "precisions to check")
	ads := flag.Int("ads", 1_000_000, "synthetic ads for the exact retrieval timing (0: skip)")
	calls := flag.Int("calls", 200, "timed calls per bucket")
	buckets := flag.String("buckets", "1,8,32,128,512,2048", "batch buckets to capture and time")
	contexts := flag.Int("contexts", 512, "contexts of the parity batch")
	flag.Parse()
	var bs []int
	for _, f := range strings.Split(*buckets, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || b < 1 {
			fmt.Fprintf(os.Stderr, "gpucheck: -buckets %q: want ascending sizes ≥ 1\n", *buckets)
			os.Exit(2)
		}
		bs = append(bs, b)
	}
	code, err := run(config{db: *db, out: *out, precs: strings.Split(*precs, ","), ads: *ads, calls: *calls, buckets: bs, contexts: *contexts})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
	}
	os.Exit(code)
}

// config is one run's flags.
type config struct {
	db, out  string
	precs    []string
	ads      int
	calls    int
	buckets  []int
	contexts int
}

func run(cf config) (int, error) {
	db, out, nads, calls := cf.db, cf.out, cf.ads, cf.calls
	if db == "" {
		dir, err := os.MkdirTemp("", "gpucheck-")
		if err != nil {
			return 2, err
		}
		defer os.RemoveAll(dir)
		w, err := fixture.Build(context.Background(), dir, 1)
		if err != nil {
			return 2, err
		}
		db = w.DB
	}
	v, err := snapshot.Current(db)
	if err != nil {
		return 2, err
	}
	c, err := catalog.Load(db, v, engine.Options{KeepWeights: true})
	if err != nil {
		return 2, err
	}
	rep := &report{Snapshot: v, Tolerance: limits, LayerTol: layerLimits}
	for _, ps := range cf.precs {
		p, err := gpu.ParsePrecision(ps)
		if err != nil {
			return 2, err
		}
		d, err := gpu.Open(gpu.Options{Paths: cuda.PathsFromEnv(), Precision: p, Buckets: cf.buckets})
		if err != nil {
			return 2, err
		}
		rep.Device = d.Info()
		if len(rep.Kernels) == 0 {
			// The kernels against their Go references (precision-independent).
			m := d.KernelMem()
			rep.Kernels = kernels.Check(m)
			_ = m.Release()
			for _, r := range rep.Kernels {
				if !r.OK {
					rep.Failures = append(rep.Failures, fmt.Sprintf("kernel %s/%s: %s (max abs %g, tol %g)", r.Kernel, r.Case, r.Err, r.MaxAbs, r.Tol))
				}
			}
		}
		// bf16 is judged against the CPU engine's own bf16 path (the same
		// rounded weights), fp32 and tf32 against fp32.
		ref := c
		if p == gpu.BF16 {
			if ref, err = catalog.Load(db, v, engine.Options{BF16: true}); err != nil {
				d.Close()
				return 2, err
			}
		}
		err = checkPrecision(rep, d, c, ref, p, calls, cf.buckets, cf.contexts)
		if err == nil && p == gpu.FP32 {
			err = checkExact(rep, d, c, nads, calls)
		}
		d.Close()
		if err != nil {
			return 2, err
		}
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return 2, err
	}
	fmt.Printf("gpucheck: %s, %d parity checks, %d layer diffs, %d exact checks, %d timings, %d failures → %s\n",
		rep.Device.Name, len(rep.Parity), len(rep.Layers), len(rep.Exact), len(rep.Timings), len(rep.Failures), out)
	for _, f := range rep.Failures {
		fmt.Println("FAIL", f)
	}
	if len(rep.Failures) > 0 {
		return 1, nil
	}
	return 0, nil
}

// checkPrecision compares every route's logits ⟨u_t, a_t⟩ + β_t for the
// parity contexts × 64 ads with the CPU engine's, and times the tower per bucket.
func checkPrecision(rep *report, d *gpu.Device, c, ref *catalog.Catalog, p gpu.Precision, calls int, buckets []int, contexts int) error {
	nt, od := len(c.Tasks), c.OutDim
	for ri, r := range c.Routes {
		t, err := d.NewUserTower(r.User)
		if err != nil {
			return err
		}
		b := engine.RandomBatch(r.User.Dims(), contexts, 0, false, 7)
		want := make([]float32, b.U*nt*od)
		got := make([]float32, len(want))
		if err := ref.Routes[ri].User.Run(engine.NewWorker(), b, want); err != nil {
			return err
		}
		if err := t.Run(nil, b, got); err != nil {
			return err
		}
		for k, task := range c.Tasks {
			if !r.User.HasTask(k) {
				continue
			}
			var diffs []float64
			for a := 0; a < min(64, len(r.Ads)); a++ {
				av := c.Vector(r.Ads[a], r.Pos, k)
				for u := range b.U {
					var zg, zw float64
					for j := range od {
						zg += float64(got[(u*nt+k)*od+j]) * float64(av[j])
						zw += float64(want[(u*nt+k)*od+j]) * float64(av[j])
					}
					diffs = append(diffs, math.Abs(zg-zw))
				}
			}
			rep.addParity("tower", p, r.Name, task, diffs)
		}
		if err := checkScore(rep, d, t, c, r, b, want, p, calls, buckets); err != nil {
			return err
		}
		if err := checkLayers(rep, t, ref.Routes[ri].User, b, p, r.Name); err != nil {
			return err
		}
		for _, bk := range buckets {
			bb := engine.RandomBatch(r.User.Dims(), bk, 0, true, uint64(bk))
			o := make([]float32, bk*nt*od)
			tm, err := timeCalls(calls, func() error { return t.Run(nil, bb, o) })
			if err != nil {
				return err
			}
			tm.What, tm.Precision, tm.Batch = "l1_user_tower/"+r.Name, p.String(), bk
			tm.PerSecond = float64(bk) / (tm.P50Ms / 1000)
			rep.Timings = append(rep.Timings, tm)
		}
		t.Close()
	}
	return nil
}

// addParity records one parity check from its |Δlogit| values.
func (rep *report) addParity(path string, p gpu.Precision, route, task string, diffs []float64) {
	slices.Sort(diffs)
	pr := parity{Path: path, Precision: p.String(), Route: route, Task: task, Logits: len(diffs),
		P99Abs: diffs[len(diffs)*99/100], MaxAbs: diffs[len(diffs)-1]}
	pr.OK = pr.P99Abs <= limits[pr.Precision]
	if !pr.OK {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s %s route %s task %s: p99 |Δlogit| %.3g > %.3g", pr.Path, pr.Precision, route, task, pr.P99Abs, limits[pr.Precision]))
	}
	rep.Parity = append(rep.Parity, pr)
}

// scoreCandidates is the candidates per context of the scoring check and
// timings.
const scoreCandidates = 100

// checkScore compares UserTower.Score with the CPU logits (want: the CPU
// engine's u_t for b) and times it per bucket.
func checkScore(rep *report, d *gpu.Device, t *gpu.UserTower, c *catalog.Catalog, r *catalog.Route, b *engine.Batch, want []float32, p gpu.Precision, calls int, buckets []int) error {
	nt, od := len(c.Tasks), c.OutDim
	vec := gpu.RouteVectors(c, r)
	av, err := d.NewAdVectors(vec, len(c.AdIDs), nt, od)
	if err != nil {
		return err
	}
	defer av.Close()
	pairs := func(contexts int, seed uint64) (ctx, ads []int32) {
		rng := rand.New(rand.NewPCG(seed, 1))
		for u := range contexts {
			for range scoreCandidates {
				ctx = append(ctx, int32(u))
				ads = append(ads, int32(rng.IntN(len(c.AdIDs))))
			}
		}
		return ctx, ads
	}
	ctx, ads := pairs(b.U, 3)
	z := make([]float32, len(ads)*nt)
	if err := t.Score(b, av, ctx, ads, z); err != nil {
		return err
	}
	for k, task := range c.Tasks {
		if !r.User.HasTask(k) {
			continue
		}
		diffs := make([]float64, len(ads))
		for i := range ads {
			zw := float64(r.User.Beta(k))
			for j := range od {
				zw += float64(want[(int(ctx[i])*nt+k)*od+j]) * float64(vec[(int(ads[i])*nt+k)*od+j])
			}
			diffs[i] = math.Abs(float64(z[i*nt+k]) - zw)
		}
		rep.addParity("score", p, r.Name, task, diffs)
	}
	for _, bk := range buckets {
		bb := engine.RandomBatch(r.User.Dims(), bk, 0, true, uint64(bk))
		ctx, ads := pairs(bk, uint64(bk))
		o := make([]float32, len(ads)*nt)
		tm, err := timeCalls(calls, func() error { return t.Score(bb, av, ctx, ads, o) })
		if err != nil {
			return err
		}
		tm.What, tm.Precision, tm.Batch, tm.Candidates = "l1_score/"+r.Name, p.String(), bk, scoreCandidates
		tm.PerSecond = float64(bk) / (tm.P50Ms / 1000)
		rep.Timings = append(rep.Timings, tm)
	}
	return nil
}

// checkLayers diffs every traced layer of the tower against the CPU
// engine; the first layer over the limit is a failure (the ones after it
// inherit its error).
func checkLayers(rep *report, t *gpu.UserTower, ref *engine.L1User, b *engine.Batch, p gpu.Precision, route string) error {
	diffs, err := t.CompareLayers(ref, b)
	if err != nil {
		return err
	}
	lim, failed := layerLimits[p.String()], false
	for _, ld := range diffs {
		lc := layerCheck{Precision: p.String(), Route: route, LayerDiff: ld, OK: ld.Rel <= lim}
		if !lc.OK && !failed {
			failed = true
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s route %s: layer %s is the first over the limit (%.3g > %.3g of its scale)", lc.Precision, route, ld.Name, ld.Rel, lim))
		}
		rep.Layers = append(rep.Layers, lc)
	}
	return nil
}

// checkExact compares device exact retrieval with the CPU's exact scan on
// the snapshot's routes, then times it over nads synthetic ads.
func checkExact(rep *report, d *gpu.Device, c *catalog.Catalog, nads, calls int) error {
	rng := rand.New(rand.NewPCG(9, 9))
	const k = 100
	for _, r := range c.Routes {
		a := gpu.RouteAds(c, r)
		x, err := d.NewExact(a, k)
		if err != nil {
			return err
		}
		nq := 32
		qs := make([]float32, nq*a.Dim)
		for i := range qs {
			qs[i] = float32(rng.NormFloat64())
		}
		fs := make([]gpu.Filter, nq)
		for i := range fs {
			fs[i] = gpu.Filter{SurfaceBits: 1 << (i % 3), Products: ^uint64(0)}
		}
		got, err := x.Search(qs, fs, min(k, len(r.Ads)))
		if err != nil {
			return err
		}
		matched, total := 0, 0
		for qi, f := range fs {
			filter := func(id int32) bool {
				return a.Active[id] != 0 && uint32(a.Surfaces[id])&f.SurfaceBits != 0 && a.Bid[id] >= f.MinBid
			}
			want, err := r.Graph.SearchExact(qs[qi*a.Dim:(qi+1)*a.Dim], min(k, len(r.Ads)), filter, nil)
			if err != nil {
				return err
			}
			if len(want) == 0 {
				continue
			}
			kth := float64(want[len(want)-1].Score)
			for _, g := range got[qi] {
				// Matched when its exact score is at least the k-th − 1e-3·|score|.
				var s float64
				for j := range a.Dim {
					s += float64(qs[qi*a.Dim+j]) * float64(a.Vectors[int(g.ID)*a.Dim+j])
				}
				if s >= kth-1e-3*math.Abs(kth) {
					matched++
				}
			}
			total += len(want)
		}
		ec := exactCheck{Route: r.Name, Queries: nq, K: k, Overlap: float64(matched) / float64(max(total, 1))}
		ec.OK = ec.Overlap >= 0.99
		if !ec.OK {
			rep.Failures = append(rep.Failures, fmt.Sprintf("exact route %s: overlap %.4f < 0.99", r.Name, ec.Overlap))
		}
		rep.Exact = append(rep.Exact, ec)
		x.Close()
	}
	if nads <= 0 {
		return nil
	}
	dim := c.OutDim
	a := gpu.ExactAds{Vectors: make([]float32, nads*dim), Dim: dim, Active: make([]uint8, nads), Surfaces: make([]uint8, nads), Product: make([]uint8, nads), Bid: make([]float32, nads)}
	for i := range a.Vectors {
		a.Vectors[i] = float32(rng.NormFloat64())
	}
	for i := range nads {
		a.Active[i], a.Surfaces[i], a.Bid[i] = 1, 0b111, 1
	}
	x, err := d.NewExact(a, 4*k)
	if err != nil {
		return err
	}
	defer x.Close()
	for _, nq := range gpu.ExactBatches {
		qs := make([]float32, nq*dim)
		for i := range qs {
			qs[i] = float32(rng.NormFloat64())
		}
		fs := make([]gpu.Filter, nq)
		for i := range fs {
			fs[i] = gpu.Filter{SurfaceBits: 1, Products: ^uint64(0)}
		}
		tm, err := timeCalls(calls, func() error { _, err := x.Search(qs, fs, 4*k); return err })
		if err != nil {
			return err
		}
		tm.What, tm.Batch = fmt.Sprintf("exact_top%d_of_%d", 4*k, nads), nq
		tm.PerSecond = float64(nq) / (tm.P50Ms / 1000)
		rep.Timings = append(rep.Timings, tm)
	}
	return nil
}

// timeCalls runs f a few times to warm up, then n times, and returns the
// p50 and p99 latencies.
func timeCalls(n int, f func() error) (timing, error) {
	for range 5 {
		if err := f(); err != nil {
			return timing{}, err
		}
	}
	ts := make([]float64, n)
	for i := range ts {
		t0 := time.Now()
		if err := f(); err != nil {
			return timing{}, err
		}
		ts[i] = float64(time.Since(t0).Microseconds()) / 1000
	}
	slices.Sort(ts)
	return timing{Calls: n, P50Ms: ts[n/2], P99Ms: ts[min(n-1, n*99/100)]}, nil
}
