// Package refresh is the nightly job: it embeds the ad catalog with each
// route's L1 ad tower (on the inference engine), builds one HNSW index per
// route over the norm-augmented a_click, writes a new snapshot version
// (package snapshot), checks its recall against exact search, and makes it
// live. A run killed at any point leaves the live version serving; the
// next run starts a new version and garbage-collects the leftovers.
//
// [Run] is the whole job in one process. [Embed], [Build] and [Publish]
// are the same job as three tasks that hand artifacts to one another
// through a store.Store, to run as Kubernetes Indexed Jobs
// (docs/REFRESH_TASKS.md).
package refresh

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	"github.com/tandemml/tandem/shard"
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

// Run executes the job: the three tasks of tasks.go (embed, build,
// publish) in one process, handing their results over in memory.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	j, err := load(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.o.DBDir, 0o755); err != nil {
		return nil, err
	}
	vectors, err := j.embedRows(ctx, 0, len(j.d.AdIDs))
	if err != nil {
		return nil, err
	}
	whole := make([]*built, len(j.routes))
	for ri := range j.routes {
		if whole[ri], err = j.build(ctx, ri, vectors, 0, 1); err != nil {
			return nil, err
		}
	}
	return j.publish(ctx, start, vectors, whole, nil, false)
}

// job is what every task loads: the options with their defaults, the
// model version, the catalog, the routes and their ad towers.
type job struct {
	o      Options
	logw   io.Writer
	vdir   string
	mf     *modeldir.Manifest
	cfg    *config.Config
	d      *batch.Data
	routes []string
	towers []*engine.L1Ad
	nt, od int
}

func load(o Options) (*job, error) {
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
	j := &job{o: o, logw: o.Log}
	if j.logw == nil {
		j.logw = io.Discard
	}
	var err error
	if j.vdir, j.mf, err = modeldir.LoadCurrent(o.ModelDir); err != nil {
		return nil, err
	}
	cfg, man, err := batch.DataConfig(o.Data, config.Default(), false)
	if err != nil {
		return nil, err
	}
	if man.SchemaHash != j.mf.SchemaHash {
		return nil, fmt.Errorf("refresh: model %s was trained on schema %.12s, %s has %.12s", j.vdir, j.mf.SchemaHash, o.Data, man.SchemaHash)
	}
	j.cfg = cfg
	if j.d, err = batch.LoadCatalog(o.Data, cfg, man); err != nil {
		return nil, err
	}
	j.routes = slices.Sorted(maps.Keys(j.mf.L1))
	if len(j.routes) == 0 {
		return nil, fmt.Errorf("refresh: model version %s has no L1 route", j.vdir)
	}
	// The ad towers fix the vector width: the data's config carries the
	// schema, not the model section the towers were trained with.
	j.towers = make([]*engine.L1Ad, len(j.routes))
	for ri, r := range j.routes {
		files := j.mf.L1[r].Files
		if len(files) != 2 {
			return nil, fmt.Errorf("refresh: %s: route %s lists %d files, want the user and ad towers", j.vdir, r, len(files))
		}
		if j.towers[ri], err = engine.LoadL1Ad(filepath.Join(j.vdir, files[1]), engine.Options{KeepWeights: o.AdTower != nil}); err != nil {
			return nil, err
		}
		if j.towers[ri].OutDim != j.towers[0].OutDim {
			return nil, fmt.Errorf("refresh: %s: route %s has d=%d, route %s d=%d", j.vdir, r, j.towers[ri].OutDim, j.routes[0], j.towers[0].OutDim)
		}
	}
	j.nt, j.od = len(cfg.Tasks), j.towers[0].OutDim
	return j, nil
}

// stride is the number of floats of one ad: routes × tasks × d.
func (j *job) stride() int { return len(j.routes) * j.nt * j.od }

// embedRows runs every route's ad tower over the ad rows [lo, hi): the
// result holds (hi−lo) × routes × tasks × d floats.
func (j *job) embedRows(ctx context.Context, lo, hi int) ([]float32, error) {
	vectors := make([]float32, (hi-lo)*j.stride())
	pool := engine.NewPool(j.o.Threads)
	defer pool.Close()
	nr := len(j.routes)
	for ri, r := range j.routes {
		ad := j.towers[ri]
		run := func(b *engine.Batch, out []float32) error { return pool.RunL1Ad(ad, b, out) }
		if j.o.AdTower != nil {
			dev, err := j.o.AdTower(ad)
			if err != nil {
				return nil, fmt.Errorf("refresh: route %s ad tower on the device: %w", r, err)
			}
			defer dev.Close()
			run = dev.Run
		}
		if err := embed(ctx, j.d, ad, run, vectors, lo, hi, ri, nr, j.logw, r); err != nil {
			return nil, err
		}
	}
	return vectors, nil
}

// built is one index of a route: the whole route's (shards = 1) or one
// shard's.
type built struct {
	shard, shards int
	graph         []byte  // index.Graph MarshalBinary
	ids           []int64 // ad id of each node
	seconds       float64 // build time
}

// members returns the ad rows of route ri and the task whose a_t its
// index holds.
func (j *job) members(ri int) ([]int32, int) {
	return routeAds(j.d, j.mf.Routing, j.routes[ri]), indexTask(j.towers[ri], j.cfg.Tasks)
}

// gather copies a_task of route ri of the rows into one matrix.
func (j *job) gather(vectors []float32, ri, task int, rows []int32) []float32 {
	nr, nt, od := len(j.routes), j.nt, j.od
	vecs := make([]float32, 0, len(rows)*od)
	for _, a := range rows {
		o := ((int(a)*nr+ri)*nt + task) * od
		vecs = append(vecs, vectors[o:o+od]...)
	}
	return vecs
}

// shardRows keeps the rows that package shard places on s of shards, in
// their order.
func (j *job) shardRows(rows []int32, s, shards int) ([]int32, error) {
	if shards == 1 {
		return rows, nil
	}
	m, err := shard.NewMap(shards)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	var out []int32
	for _, a := range rows {
		if m.Shard(j.d.AdIDs[a]) == s {
			out = append(out, a)
		}
	}
	return out, nil
}

// build makes the HNSW index of shard s of shards of route ri over the
// catalog's vectors (all ads × routes × tasks × d).
func (j *job) build(ctx context.Context, ri int, vectors []float32, s, shards int) (*built, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := j.routes[ri]
	all, task := j.members(ri)
	rows, err := j.shardRows(all, s, shards)
	if err != nil {
		return nil, err
	}
	where := "route " + r
	if shards > 1 {
		where = fmt.Sprintf("route %s shard %d of %d", r, s, shards)
	}
	fmt.Fprintf(j.logw, "refresh: %s: indexing %d ads (a_%s, inner product)\n", where, len(rows), j.cfg.Tasks[task])
	t0 := time.Now()
	g, err := index.Build(j.gather(vectors, ri, task, rows), j.od, index.Config{M: j.o.M, EfConstruction: j.o.EfConstruction, Metric: index.InnerProduct, Seed: j.o.Seed}, j.o.Threads)
	if err != nil {
		return nil, fmt.Errorf("refresh: %s: %w", where, err)
	}
	b := &built{shard: s, shards: shards, seconds: time.Since(t0).Seconds(), ids: make([]int64, len(rows))}
	for i, a := range rows {
		b.ids[i] = j.d.AdIDs[a]
	}
	if b.graph, err = g.MarshalBinary(); err != nil {
		return nil, err
	}
	fmt.Fprintf(j.logw, "refresh: %s: built in %.1fs\n", where, b.seconds)
	return b, nil
}

// publish checks the whole-route indexes' recall, writes the version
// (ads with their vectors, items, per route the whole index, its ids and
// the user tower, and the per-shard indexes of every shard count in
// shards), verifies it, flips CURRENT and garbage-collects. rerun
// (the publish task) lets a version name that an earlier, killed attempt
// left unfinished be written again, and a version already live be a
// success.
func (j *job) publish(ctx context.Context, start time.Time, vectors []float32, whole []*built, shards map[int][][]*built, rerun bool) (*Report, error) {
	o, d := j.o, j.d
	rep := &Report{Version: o.Version, ModelVersion: j.mf.Version, Ads: len(d.AdIDs), Items: len(d.ItemIDs)}
	blobs := map[string][]byte{}
	for ri, r := range j.routes {
		all, task := j.members(ri)
		b := whole[ri]
		sum := j.mf.L1[r].SHA256
		rr := RouteReport{Route: r, Ads: len(all), Task: j.cfg.Tasks[task], L1Version: j.mf.Version + "/" + sum[:min(12, len(sum))], BuildSeconds: b.seconds}
		g, err := index.Unmarshal(b.graph)
		if err != nil {
			return nil, fmt.Errorf("refresh: route %s index: %w", r, err)
		}
		if rr.Recall10, err = checkRecall(g, j.gather(vectors, ri, task, all), j.od, o.CheckQueries, o.Seed); err != nil {
			return nil, err
		}
		fmt.Fprintf(j.logw, "refresh: route %s: recall@10 %.3f against exact search on %d sampled queries\n", r, rr.Recall10, o.CheckQueries)
		if rr.Recall10 < o.MinRecall {
			return nil, fmt.Errorf("refresh: route %s: recall@10 %.3f is below %.2f: the new version is not made live", r, rr.Recall10, o.MinRecall)
		}
		user, err := os.ReadFile(filepath.Join(j.vdir, j.mf.L1[r].Files[0]))
		if err != nil {
			return nil, err
		}
		blobs[snapshot.RouteBlob(r, "index")] = b.graph
		blobs[snapshot.RouteBlob(r, "ids")] = idBytes(b.ids)
		blobs[snapshot.RouteBlob(r, "user.safetensors")] = user
		for S, per := range shards {
			for _, sb := range per[ri] {
				blobs[snapshot.ShardBlob(r, S, sb.shard, "index")] = sb.graph
				blobs[snapshot.ShardBlob(r, S, sb.shard, "ids")] = idBytes(sb.ids)
			}
		}
		rep.Routes = append(rep.Routes, rr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if rerun {
		live, err := j.prepareVersion()
		if err != nil || live {
			return rep, err
		}
	}
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
	for _, name := range slices.Sorted(maps.Keys(blobs)) {
		if err := w.PutBlob(name, blobs[name]); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(j.logw, "refresh: writing %d ads and %d items into %s\n", len(d.AdIDs), len(d.ItemIDs), filepath.Join(o.DBDir, o.Version))
	c := d.Feat.ContentDim
	for i, id := range d.ItemIDs {
		if err := w.PutItem(id, d.ItemEmb[i*c:(i+1)*c]); err != nil {
			return nil, err
		}
	}
	nac, nad, st := len(d.Feat.AdCat), len(d.Feat.AdDense), j.stride()
	for a, id := range d.AdIDs {
		rec := &snapshot.Ad{ID: id, ItemID: d.ItemIDs[d.AdItem[a]], Product: d.AdProduct[a], Eligible: d.AdEligible[a], Active: d.AdActive[a],
			Bid: d.AdBid[a], Cats: d.AdCats[a*nac : (a+1)*nac], Dense: d.AdDense[a*nad : (a+1)*nad],
			Vectors: vectors[a*st : (a+1)*st]}
		if err := w.PutAd(rec); err != nil {
			return nil, err
		}
	}
	extra, _ := json.Marshal(rep.Routes)
	var rules []snapshot.Rule
	for _, r := range j.mf.Routing {
		rules = append(rules, snapshot.Rule{Surface: r.Surface, Product: r.Product, Route: r.Route})
	}
	if err := w.Finish(snapshot.Manifest{Created: time.Now().UTC(), ModelVersion: j.mf.Version, SchemaHash: j.mf.SchemaHash,
		Tasks: j.cfg.Tasks, Routes: j.routes, Routing: rules, OutDim: j.od, Shards: slices.Sorted(maps.Keys(shards)), Extra: extra}); err != nil {
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
	fmt.Fprintf(j.logw, "refresh: %s is live (%.1fs); removed %v\n", o.Version, rep.Seconds, rep.Removed)
	return rep, nil
}

// prepareVersion lets a publish task run again under the same version
// name: a version already live is done (true); one that an earlier
// attempt left unfinished or unflipped is removed to be written again.
// The rollback target is never removed.
func (j *job) prepareVersion() (live bool, err error) {
	dir := filepath.Join(j.o.DBDir, j.o.Version)
	if _, err := os.Stat(dir); err != nil {
		return false, nil
	}
	cur, err := snapshot.Current(j.o.DBDir)
	if err != nil {
		return false, err
	}
	if cur == j.o.Version {
		if s, err := snapshot.Open(j.o.DBDir, cur); err == nil {
			s.Close()
			fmt.Fprintf(j.logw, "refresh: %s is already live\n", cur)
			return true, nil
		}
		return false, fmt.Errorf("refresh: %s is live and does not verify; publish under another version", dir)
	}
	if prev, err := snapshot.Previous(j.o.DBDir); err != nil || prev == j.o.Version {
		return false, errors.Join(err, fmt.Errorf("refresh: %s is the rollback target; publish under another version", dir))
	}
	fmt.Fprintf(j.logw, "refresh: removing %s, left by an earlier attempt\n", dir)
	return false, os.RemoveAll(dir)
}

func idBytes(ids []int64) []byte {
	b := make([]byte, 0, 8*len(ids))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, uint64(id))
	}
	return b
}

// embed runs the ad tower over the ad rows [lo, hi) into
// vectors[a−lo, ri, :, :].
func embed(ctx context.Context, d *batch.Data, ad *engine.L1Ad, run func(*engine.Batch, []float32) error, vectors []float32, lo, hi, ri, nr int, logw io.Writer, route string) error {
	const chunk = 4096
	nt, od := len(ad.Tasks), ad.OutDim
	bar := progress.New(logw, "refresh: route "+route+": ad tower", int64(hi-lo), "ads")
	var b engine.Batch
	out := make([]float32, chunk*nt*od)
	rows := make([]batch.Row, 0, chunk)
	for c := lo; c < hi; c += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows = rows[:0]
		for a := c; a < min(c+chunk, hi); a++ {
			rows = append(rows, batch.Row{AdRow: int32(a), Imp: -1})
		}
		d.EngineAdBatch(&b, rows)
		if err := run(&b, out[:len(rows)*nt*od]); err != nil {
			return err
		}
		for i := range rows {
			a := c + i - lo
			copy(vectors[(a*nr+ri)*nt*od:(a*nr+ri+1)*nt*od], out[i*nt*od:(i+1)*nt*od])
		}
		bar.Set(int64(c+len(rows)-lo), "")
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
