package main

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/tandemml/tandem/batch"
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/modeldir"
)

// adsSet is the maximum inner product problem of retrieval: the click ad
// vectors a_click of a catalog's ads through a trained L1 ad tower (the
// ads a route serves, as the nightly refresh indexes them) and, as
// queries, the user vectors u_click of test requests through the same
// version's user tower.
type adsSet struct {
	base, queries []float32
	dim           int
	route, model  string
	catalogAds    int // ads in the catalog, before the route's selection
}

// loadAds embeds the ads of catalogDir (dataDir when empty) and the test
// requests of dataDir with model directory modelDir's CURRENT version,
// route route (the first when empty); nq > 0 keeps that many evenly
// spaced requests.
func loadAds(dataDir, catalogDir, modelDir, route string, nq, threads int) (*adsSet, error) {
	vdir, mf, err := modeldir.LoadCurrent(modelDir)
	if err != nil {
		return nil, err
	}
	load := func(dir string, full bool) (*batch.Data, error) {
		cfg, man, err := batch.DataConfig(dir, config.Default(), false)
		if err != nil {
			return nil, err
		}
		if man.SchemaHash != mf.SchemaHash {
			return nil, fmt.Errorf("model %s was trained on schema %.12s, %s has %.12s", vdir, mf.SchemaHash, dir, man.SchemaHash)
		}
		if full {
			return batch.Load(dir, cfg, man)
		}
		return batch.LoadCatalog(dir, cfg, man)
	}
	d, err := load(dataDir, true)
	if err != nil {
		return nil, err
	}
	cat := d
	if catalogDir != "" && filepath.Clean(catalogDir) != filepath.Clean(dataDir) {
		if cat, err = load(catalogDir, false); err != nil {
			return nil, err
		}
	}
	if route == "" {
		for r := range mf.L1 {
			if route == "" || r < route {
				route = r
			}
		}
	}
	art, ok := mf.L1[route]
	if !ok || len(art.Files) != 2 {
		return nil, fmt.Errorf("model %s has no L1 route %q with a user and an ad tower", vdir, route)
	}
	user, err := engine.LoadL1User(filepath.Join(vdir, art.Files[0]), engine.Options{})
	if err != nil {
		return nil, err
	}
	ad, err := engine.LoadL1Ad(filepath.Join(vdir, art.Files[1]), engine.Options{})
	if err != nil {
		return nil, err
	}
	task := slices.Index(d.Cfg.Tasks, "click")
	if task < 0 || !ad.HasTask(task) || !user.HasTask(task) {
		return nil, fmt.Errorf("route %s of %s has no click task", route, vdir)
	}
	nt, od := len(ad.Tasks), ad.OutDim
	pool := engine.NewPool(threads)
	defer pool.Close()
	set := &adsSet{dim: od, route: route, model: filepath.Base(vdir), catalogAds: len(cat.AdIDs)}

	// Ad vectors of the route's ads.
	members := routeAds(cat, mf.Routing, route)
	const chunk = 4096
	var b engine.Batch
	out := make([]float32, chunk*nt*od)
	rows := make([]batch.Row, 0, chunk)
	set.base = make([]float32, 0, len(members)*od)
	for lo := 0; lo < len(members); lo += chunk {
		rows = rows[:0]
		for _, a := range members[lo:min(lo+chunk, len(members))] {
			rows = append(rows, batch.Row{AdRow: a, Imp: -1})
		}
		cat.EngineAdBatch(&b, rows)
		if err := pool.RunL1Ad(ad, &b, out[:len(rows)*nt*od]); err != nil {
			return nil, err
		}
		for i := range rows {
			set.base = append(set.base, out[(i*nt+task)*od:(i*nt+task+1)*od]...)
		}
	}

	// User vectors of test requests on surfaces the route serves.
	serves := map[int]bool{}
	for _, rt := range mf.Routing {
		if rt.Route != route {
			continue
		}
		if rt.Surface == "*" {
			for s := range d.Cfg.Surfaces {
				serves[s] = true
			}
		} else if s := d.Cfg.SurfaceIndex(rt.Surface); s >= 0 {
			serves[s] = true
		}
	}
	var reqs []int32
	for _, ri := range d.RequestsIn(batch.Test) {
		if serves[int(d.Requests[ri].Surface)] {
			reqs = append(reqs, ri)
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no test requests on the surfaces of route %s", dataDir, route)
	}
	if nq > 0 && nq < len(reqs) {
		step := float64(len(reqs)) / float64(nq)
		picked := make([]int32, nq)
		for i := range picked {
			picked[i] = reqs[int(float64(i)*step)]
		}
		reqs = picked
	}
	set.queries = make([]float32, 0, len(reqs)*od)
	for lo := 0; lo < len(reqs); lo += chunk {
		rows = rows[:0]
		for _, ri := range reqs[lo:min(lo+chunk, len(reqs))] {
			rows = append(rows, batch.Row{Req: ri, Imp: -1})
		}
		d.EngineBatch(&b, rows, true)
		if b.U != len(rows) {
			return nil, fmt.Errorf("user batch: %d contexts for %d requests", b.U, len(rows))
		}
		if err := pool.RunL1User(user, &b, out[:b.U*nt*od]); err != nil {
			return nil, err
		}
		for c := range b.U {
			set.queries = append(set.queries, out[(c*nt+task)*od:(c*nt+task+1)*od]...)
		}
	}
	return set, nil
}

// routeAds lists the ad rows a route serves, as the refresh job selects
// them: active ads whose product the routing map sends to the route on a
// surface they are eligible on.
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
