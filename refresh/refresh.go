// Package refresh is the nightly job: it embeds the ad catalog with each
// route's L1 ad tower (on the inference engine), builds one HNSW index per
// route over the norm-augmented a_click, writes a new snapshot version
// (package snapshot), checks its recall against exact search, and makes it
// live. A run killed at any point leaves the live version serving; the
// next run starts a new version and garbage-collects the leftovers.
package refresh

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/modeldir"
	"github.com/tandemml/tandem/progress"
	"github.com/tandemml/tandem/snapshot"
)

// Options configure a run.
type Options struct {
	Data, ModelDir, DBDir string
	// Version names the new snapshot (default: the UTC time, which sorts).
	Version string
	// Threads for the ad tower and the index build (default: all cores).
	Threads int
	// M and EfConstruction of the indexes (defaults of package index).
	M, EfConstruction int
	// CheckQueries is the number of sampled queries of the recall check
	// (default 200); MinRecall the recall@10 it must reach (default 0.9).
	CheckQueries int
	MinRecall    float64
	Seed         uint64
	Log          io.Writer // progress and summary (nil: quiet)
	// AdTower, when set, puts a route's ad tower on another backend (the
	// GPU: cmd wires gpu.Device.NewAdTower); the towers are then loaded
	// with their fp32 weights kept. nil runs the CPU engine.
	AdTower func(m *engine.L1Ad) (AdRunner, error)
}

// AdRunner embeds ads as engine.L1Ad.Run does; Close frees it.
type AdRunner interface {
	Run(b *engine.Batch, out []float32) error
	Close()
}

// RouteReport is what the run measured of one route.
type RouteReport struct {
	Route        string  `json:"route"`
	Ads          int     `json:"ads"`
	Task         string  `json:"task"` // whose a_t the index holds
	BuildSeconds float64 `json:"build_seconds"`
	Recall10     float64 `json:"recall_at_10"` // against exact search, sampled queries
	L1Version    string  `json:"l1_version"`   // model version / the route's file hash (SYSTEM.md §3)
}

// Report is a run's outcome.
type Report struct {
	Version      string        `json:"version"`
	ModelVersion string        `json:"model_version"`
	Ads          int           `json:"ads"`
	Items        int           `json:"items"`
	Routes       []RouteReport `json:"routes"`
	Removed      []string      `json:"removed,omitempty"` // garbage-collected versions
	Seconds      float64       `json:"seconds"`
}

// Run executes the job.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	if o.CheckQueries <= 0 {
		o.CheckQueries = 200
	}
	if o.MinRecall == 0 {
		o.MinRecall = 0.9
	}
	if o.Version == "" {
		o.Version = time.Now().UTC().Format("20060102T150405.000Z")
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	vdir, mf, err := modeldir.LoadCurrent(o.ModelDir)
	if err != nil {
		return nil, err
	}
	cfg, man, err := batch.DataConfig(o.Data, config.Default(), false)
	if err != nil {
		return nil, err
	}
	if man.SchemaHash != mf.SchemaHash {
		return nil, fmt.Errorf("refresh: model %s was trained on schema %.12s, %s has %.12s", vdir, mf.SchemaHash, o.Data, man.SchemaHash)
	}
	d, err := batch.LoadCatalog(o.Data, cfg, man)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DBDir, 0o755); err != nil {
		return nil, err
	}
	routes := slices.Sorted(func(yield func(string) bool) {
		for r := range mf.L1 {
			if !yield(r) {
				return
			}
		}
	})
	if len(routes) == 0 {
		return nil, fmt.Errorf("refresh: model version %s has no L1 route", vdir)
	}
	rep := &Report{Version: o.Version, ModelVersion: mf.Version, Ads: len(d.AdIDs), Items: len(d.ItemIDs)}
	// The ad towers fix the vector width: the data's config carries the
	// schema, not the model section the towers were trained with.
	towers := make([]*engine.L1Ad, len(routes))
	for ri, r := range routes {
		files := mf.L1[r].Files
		if len(files) != 2 {
			return nil, fmt.Errorf("refresh: %s: route %s lists %d files, want the user and ad towers", vdir, r, len(files))
		}
		if towers[ri], err = engine.LoadL1Ad(filepath.Join(vdir, files[1]), engine.Options{KeepWeights: o.AdTower != nil}); err != nil {
			return nil, err
		}
		if towers[ri].OutDim != towers[0].OutDim {
			return nil, fmt.Errorf("refresh: %s: route %s has d=%d, route %s d=%d", vdir, r, towers[ri].OutDim, routes[0], towers[0].OutDim)
		}
	}
	nt, od := len(cfg.Tasks), towers[0].OutDim
	nr := len(routes)
	vectors := make([]float32, len(d.AdIDs)*nr*nt*od) // ads × routes × tasks × od
	pool := engine.NewPool(o.Threads)
	defer pool.Close()

	w, err := snapshot.Create(o.DBDir, o.Version)
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() {
		if !finished {
			w.Abort()
		}
	}()
	for ri, r := range routes {
		files := mf.L1[r].Files
		ad := towers[ri]
		run := func(b *engine.Batch, out []float32) error { return pool.RunL1Ad(ad, b, out) }
		if o.AdTower != nil {
			dev, err := o.AdTower(ad)
			if err != nil {
				return nil, fmt.Errorf("refresh: route %s ad tower on the device: %w", r, err)
			}
			defer dev.Close()
			run = dev.Run
		}
		if err := embed(ctx, d, ad, run, vectors, ri, nr, logw, r); err != nil {
			return nil, err
		}
		members := routeAds(d, mf.Routing, r)
		task := indexTask(ad, cfg.Tasks)
		sum := mf.L1[r].SHA256
		rr := RouteReport{Route: r, Ads: len(members), Task: cfg.Tasks[task], L1Version: mf.Version + "/" + sum[:min(12, len(sum))]}
		vecs := make([]float32, 0, len(members)*od)
		for _, a := range members {
			o := ((int(a)*nr+ri)*nt + task) * od
			vecs = append(vecs, vectors[o:o+od]...)
		}
		t0 := time.Now()
		fmt.Fprintf(logw, "refresh: route %s: indexing %d ads (a_%s, inner product)\n", r, len(members), cfg.Tasks[task])
		g, err := index.Build(vecs, od, index.Config{M: o.M, EfConstruction: o.EfConstruction, Metric: index.InnerProduct, Seed: o.Seed}, o.Threads)
		if err != nil {
			return nil, fmt.Errorf("refresh: route %s: %w", r, err)
		}
		rr.BuildSeconds = time.Since(t0).Seconds()
		if rr.Recall10, err = checkRecall(g, vecs, od, o.CheckQueries, o.Seed); err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "refresh: route %s: built in %.1fs, recall@10 %.3f against exact search on %d sampled queries\n", r, rr.BuildSeconds, rr.Recall10, o.CheckQueries)
		if rr.Recall10 < o.MinRecall {
			return nil, fmt.Errorf("refresh: route %s: recall@10 %.3f is below %.2f: the new version is not made live", r, rr.Recall10, o.MinRecall)
		}
		blob, err := g.MarshalBinary()
		if err != nil {
			return nil, err
		}
		ids := make([]byte, 0, 8*len(members))
		for _, a := range members {
			ids = binary.LittleEndian.AppendUint64(ids, uint64(d.AdIDs[a]))
		}
		user, err := os.ReadFile(filepath.Join(vdir, files[0]))
		if err != nil {
			return nil, err
		}
		for name, b := range map[string][]byte{"route/" + r + "/index": blob, "route/" + r + "/ids": ids, "route/" + r + "/user.safetensors": user} {
			if err := w.PutBlob(name, b); err != nil {
				return nil, err
			}
		}
		rep.Routes = append(rep.Routes, rr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "refresh: writing %d ads and %d items into %s\n", len(d.AdIDs), len(d.ItemIDs), filepath.Join(o.DBDir, o.Version))
	c := d.Feat.ContentDim
	for i, id := range d.ItemIDs {
		if err := w.PutItem(id, d.ItemEmb[i*c:(i+1)*c]); err != nil {
			return nil, err
		}
	}
	nac, nad := len(d.Feat.AdCat), len(d.Feat.AdDense)
	for a, id := range d.AdIDs {
		rec := &snapshot.Ad{ID: id, ItemID: d.ItemIDs[d.AdItem[a]], Product: d.AdProduct[a], Eligible: d.AdEligible[a], Active: d.AdActive[a],
			Bid: d.AdBid[a], Cats: d.AdCats[a*nac : (a+1)*nac], Dense: d.AdDense[a*nad : (a+1)*nad],
			Vectors: vectors[a*nr*nt*od : (a+1)*nr*nt*od]}
		if err := w.PutAd(rec); err != nil {
			return nil, err
		}
	}
	extra, _ := json.Marshal(rep.Routes)
	var rules []snapshot.Rule
	for _, r := range mf.Routing {
		rules = append(rules, snapshot.Rule{Surface: r.Surface, Product: r.Product, Route: r.Route})
	}
	if err := w.Finish(snapshot.Manifest{Created: time.Now().UTC(), ModelVersion: mf.Version, SchemaHash: mf.SchemaHash,
		Tasks: cfg.Tasks, Routes: routes, Routing: rules, OutDim: od, Extra: extra}); err != nil {
		return nil, err
	}
	finished = true
	if err := snapshot.Flip(o.DBDir, o.Version); err != nil {
		return nil, err
	}
	if rep.Removed, err = snapshot.GC(o.DBDir, ""); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	fmt.Fprintf(logw, "refresh: %s is live (%.1fs); removed %v\n", o.Version, rep.Seconds, rep.Removed)
	return rep, nil
}

// embed runs the ad tower over every ad into vectors[:, ri, :, :].
func embed(ctx context.Context, d *batch.Data, ad *engine.L1Ad, run func(*engine.Batch, []float32) error, vectors []float32, ri, nr int, logw io.Writer, route string) error {
	const chunk = 4096
	n := len(d.AdIDs)
	nt, od := len(ad.Tasks), ad.OutDim
	bar := progress.New(logw, "refresh: route "+route+": ad tower", int64(n), "ads")
	var b engine.Batch
	out := make([]float32, chunk*nt*od)
	rows := make([]batch.Row, 0, chunk)
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows = rows[:0]
		for a := lo; a < min(lo+chunk, n); a++ {
			rows = append(rows, batch.Row{AdRow: int32(a), Imp: -1})
		}
		d.EngineAdBatch(&b, rows)
		if err := run(&b, out[:len(rows)*nt*od]); err != nil {
			return err
		}
		for i := range rows {
			a := lo + i
			copy(vectors[(a*nr+ri)*nt*od:(a*nr+ri+1)*nt*od], out[i*nt*od:(i+1)*nt*od])
		}
		bar.Set(int64(lo+len(rows)), "")
	}
	bar.Done()
	return nil
}

// routeAds lists the ad rows a route serves: active ads whose product the
// routing map sends to it on some surface they are eligible on.
func routeAds(d *batch.Data, routing []modeldir.Route, route string) []int32 {
	var out []int32
	for a := range d.AdIDs {
		if !d.AdActive[a] {
			continue
		}
		p := d.Cfg.Products[d.AdProduct[a]]
		for _, rt := range routing {
			if rt.Route != route || (rt.Product != "*" && rt.Product != p) {
				continue
			}
			s := d.Cfg.SurfaceIndex(rt.Surface)
			if rt.Surface == "*" || (s >= 0 && d.AdEligible[a]&(1<<s) != 0) {
				out = append(out, int32(a))
				break
			}
		}
	}
	return out
}

// indexTask is the task whose a_t the index holds: click, or the first
// task the route trains.
func indexTask(ad *engine.L1Ad, tasks []string) int {
	if k := slices.Index(tasks, "click"); k >= 0 && ad.HasTask(k) {
		return k
	}
	for k := range tasks {
		if ad.HasTask(k) {
			return k
		}
	}
	return 0
}

// checkRecall measures recall@10 of g against exact search, with queries
// drawn from the indexed vectors themselves, perturbed (the index must
// find neighbours, not only the query's own row).
func checkRecall(g *index.Graph, vecs []float32, dim, queries int, seed uint64) (float64, error) {
	n := len(vecs) / dim
	if n == 0 {
		return 1, nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x636b))
	s := index.NewSearcher()
	q := make([]float32, dim)
	hit, total := 0, 0
	for range queries {
		a := rng.IntN(n)
		for j := range q {
			q[j] = vecs[a*dim+j] + float32(rng.NormFloat64()*0.1)
		}
		want, err := index.Exact(vecs, dim, index.InnerProduct, q, 10, nil)
		if err != nil {
			return 0, err
		}
		got, err := g.Search(q, 10, 100, nil, s)
		if err != nil {
			return 0, err
		}
		ids := map[int32]bool{}
		for _, r := range got {
			ids[r.ID] = true
		}
		for _, r := range want {
			if ids[r.ID] {
				hit++
			}
		}
		total += len(want)
	}
	return float64(hit) / float64(max(total, 1)), nil
}
