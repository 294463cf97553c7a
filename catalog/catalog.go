// Package catalog holds one snapshot version in memory for serving: the ad
// table as flat arrays, the item table, and per route its HNSW index, the
// ad of each index node and its L1 user tower (SYSTEM.md §3). Load reads a
// version once, verified, and closes its Badger directory: a loaded
// Catalog is immutable, safe for concurrent use, and needs nothing on disk,
// so the refresh job may garbage-collect the directory while it serves.
package catalog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/query"
	"github.com/tandemml/tandem/shard"
	"github.com/tandemml/tandem/snapshot"
)

// Catalog is a loaded snapshot version.
type Catalog struct {
	Version  string
	Manifest snapshot.Manifest
	// Cfg is the schema the snapshot's user towers were trained with.
	Cfg    *config.Config
	Schema *query.Schema
	Tasks  []string
	OutDim int

	adRow    map[int64]int32
	AdIDs    []int64
	AdItem   []int32 // item row of each ad
	AdCats   []int32 // ads × ad categorical features
	AdDense  []float32
	Bid      []float32
	Product  []uint8 // index into Cfg.Products
	Eligible []uint8 // bit s: eligible on surface s
	Active   []bool
	// Vectors holds a_t: ads × routes × tasks × OutDim.
	Vectors []float32

	itemRow map[int64]int32
	ItemIDs []int64
	ItemEmb []float32 // items × content width

	Routes []*Route
}

// Route is one L1 route of the snapshot.
type Route struct {
	Name  string
	Pos   int // position in Manifest.Routes (the order of Vectors)
	Graph *index.Graph
	Ads   []int32 // ad row of each index node
	User  *engine.L1User
	// Tower runs User on another backend (a GPU); nil runs the CPU engine.
	Tower UserRunner
	// Exact is the route's index on a device for exact retrieval (nil:
	// none); it holds Graph's nodes in the same order.
	Exact     ExactSearcher
	L1Version string
	Task      int // the task whose a_t the index holds
}

// UserRunner computes a route's user vectors as engine.L1User.Run does.
type UserRunner interface {
	Run(w *engine.Worker, b *engine.Batch, out []float32) error
}

// ExactSearcher scores every node of a route and returns the top k by
// inner product among those a filter admits: active, eligible on a surface
// in surfaceBits, of a product in products (bit p), bid ≥ minBid.
type ExactSearcher interface {
	SearchOne(q []float32, k int, surfaceBits uint32, products uint64, minBid float32) ([]index.Result, error)
	KMax() int
}

// Runner returns the route's user tower: Tower when set, else User.
func (r *Route) Runner() UserRunner {
	if r.Tower != nil {
		return r.Tower
	}
	return r.User
}

// Load opens DBDIR/<version>/ (verified against its manifest), reads it
// into memory and closes it. o are the engine's load options for the user
// towers.
func Load(dbdir, version string, o engine.Options) (*Catalog, error) {
	return load(dbdir, version, o, Part{})
}

// Part selects what of a version a process holds in sharded serving
// (docs/SCALING.md). The zero value is everything.
type Part struct {
	// Towers keeps only the user towers and the item table (a root): no
	// ads and no indexes.
	Towers bool
	// Shards > 1 keeps only the ads that package shard places on Shard,
	// with each route's index of those ads: the version's per-shard index
	// when it holds this split (Manifest.Shards), else one built at load.
	Shards, Shard int
	// Threads builds a missing shard index (default: all cores).
	Threads int
}

// LoadPart is Load keeping only part p.
func LoadPart(dbdir, version string, o engine.Options, p Part) (*Catalog, error) {
	if p.Shards < 0 || p.Shard < 0 || (p.Shards > 0 && p.Shard >= p.Shards) {
		return nil, fmt.Errorf("catalog: shard %d of %d", p.Shard, p.Shards)
	}
	if p.Towers && p.Shards > 1 {
		return nil, fmt.Errorf("catalog: a part is either the towers or a shard")
	}
	return load(dbdir, version, o, p)
}

func load(dbdir, version string, o engine.Options, part Part) (*Catalog, error) {
	s, err := snapshot.Open(dbdir, version)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	m := s.Manifest
	var place *shard.Map
	if part.Shards > 1 {
		sm, err := shard.NewMap(part.Shards)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		place = &sm
	}
	stored := place != nil && slices.Contains(m.Shards, part.Shards)
	c := &Catalog{Version: version, Manifest: m, Tasks: m.Tasks, OutDim: m.OutDim, adRow: map[int64]int32{}, itemRow: map[int64]int32{}}
	if len(m.Routes) == 0 {
		return nil, fmt.Errorf("catalog: %s: the manifest lists no route", s.Dir)
	}
	var idBlobs [][]byte
	for i, name := range m.Routes {
		r := &Route{Name: name, Pos: i}
		blob, err := s.Blob("route/" + name + "/user.safetensors")
		if err != nil {
			return nil, err
		}
		if r.User, err = engine.LoadL1UserBytes(s.Dir+": route/"+name+"/user.safetensors", blob, o); err != nil {
			return nil, fmt.Errorf("catalog: %s: route %s: user tower: %w", s.Dir, name, err)
		}
		if r.User.Cfg.SchemaHash() != m.SchemaHash {
			return nil, fmt.Errorf("catalog: %s: route %s: the user tower's schema %.12s is not the snapshot's %.12s", s.Dir, name, r.User.Cfg.SchemaHash(), m.SchemaHash)
		}
		if r.User.OutDim != m.OutDim || !slices.Equal(r.User.Tasks, m.Tasks) {
			return nil, fmt.Errorf("catalog: %s: route %s: the user tower has d=%d tasks %v, the snapshot d=%d tasks %v", s.Dir, name, r.User.OutDim, r.User.Tasks, m.OutDim, m.Tasks)
		}
		r.L1Version = routeVersion(m, name)
		r.Task = indexTask(m, name)
		c.Routes = append(c.Routes, r)
		if c.Cfg == nil {
			c.Cfg = r.User.Cfg
		}
		if part.Towers {
			continue
		}
		indexName, idsName := snapshot.RouteBlob(name, "index"), snapshot.RouteBlob(name, "ids")
		if stored {
			indexName, idsName = snapshot.ShardBlob(name, part.Shards, part.Shard, "index"), snapshot.ShardBlob(name, part.Shards, part.Shard, "ids")
		}
		ids, err := s.Blob(idsName)
		if err != nil {
			return nil, err
		}
		if len(ids)%8 != 0 {
			return nil, fmt.Errorf("catalog: %s: %s: %d bytes, not whole ad ids", s.Dir, idsName, len(ids))
		}
		if place != nil && !stored {
			// No stored split: keep the shard's nodes in the whole index's
			// order and build their graph once the vectors are read.
			var keep []byte
			for j := 0; j < len(ids); j += 8 {
				if place.Shard(int64(binary.LittleEndian.Uint64(ids[j:]))) == part.Shard {
					keep = append(keep, ids[j:j+8]...)
				}
			}
			ids = keep
		} else {
			if blob, err = s.Blob(indexName); err != nil {
				return nil, err
			}
			if r.Graph, err = index.Unmarshal(blob); err != nil {
				return nil, fmt.Errorf("catalog: %s: %s: %w", s.Dir, indexName, err)
			}
			if r.Graph.Dim() != m.OutDim {
				return nil, fmt.Errorf("catalog: %s: %s: dimension %d, the snapshot's vectors have %d", s.Dir, indexName, r.Graph.Dim(), m.OutDim)
			}
			if len(ids) != 8*r.Graph.Len() {
				return nil, fmt.Errorf("catalog: %s: %s: %d id bytes for %d index nodes", s.Dir, idsName, len(ids), r.Graph.Len())
			}
		}
		r.Ads = make([]int32, len(ids)/8) // resolved once the ad table is read
		idBlobs = append(idBlobs, ids)
	}
	if c.Schema, err = query.NewSchema(c.Cfg); err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", s.Dir, err)
	}
	cw := c.Schema.Feat.ContentDim
	err = s.Items(func(id int64, content []float32) error {
		if len(content) != cw {
			return fmt.Errorf("catalog: %s: item %d has %d content values, the schema %d", s.Dir, id, len(content), cw)
		}
		c.itemRow[id] = int32(len(c.ItemEmb) / cw)
		c.ItemIDs = append(c.ItemIDs, id)
		c.ItemEmb = append(c.ItemEmb, content...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if part.Towers {
		return c, nil
	}
	err = s.Ads(func(a *snapshot.Ad) error {
		if place != nil && place.Shard(a.ID) != part.Shard {
			return nil
		}
		return c.addAd(a)
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", s.Dir, err)
	}
	for ri, r := range c.Routes {
		for j := range r.Ads {
			id := int64(binary.LittleEndian.Uint64(idBlobs[ri][8*j:]))
			row, ok := c.adRow[id]
			if !ok {
				return nil, fmt.Errorf("catalog: %s: route %s: index node %d is ad %d, which the ad table lacks", s.Dir, r.Name, j, id)
			}
			r.Ads[j] = row
		}
		if r.Graph == nil {
			if err := c.buildIndex(r, part.Threads); err != nil {
				return nil, fmt.Errorf("catalog: %s: route %s shard %d of %d: %w", s.Dir, r.Name, part.Shard, part.Shards, err)
			}
		}
	}
	return c, nil
}

// buildIndex builds route r's graph over its ads' index-task vectors, as
// the refresh job builds a whole route's (inner product, default
// parameters, seed 1).
func (c *Catalog) buildIndex(r *Route, threads int) error {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	od := c.OutDim
	vecs := make([]float32, 0, len(r.Ads)*od)
	for _, a := range r.Ads {
		vecs = append(vecs, c.Vector(a, r.Pos, r.Task)...)
	}
	g, err := index.Build(vecs, od, index.Config{Metric: index.InnerProduct, Seed: 1}, threads)
	if err != nil {
		return err
	}
	r.Graph = g
	return nil
}

// addAd appends ad a's row after checking it against the schema.
func (c *Catalog) addAd(a *snapshot.Ad) error {
	nac, nad := len(c.Schema.Feat.AdCat), len(c.Schema.Feat.AdDense)
	nv := len(c.Manifest.Routes) * len(c.Tasks) * c.OutDim
	if len(a.Cats) != nac || len(a.Dense) != nad || len(a.Vectors) != nv {
		return fmt.Errorf("ad %d has %d categorical, %d dense and %d vector values, the schema %d, %d and %d",
			a.ID, len(a.Cats), len(a.Dense), len(a.Vectors), nac, nad, nv)
	}
	if _, dup := c.adRow[a.ID]; dup {
		return fmt.Errorf("ad %d appears twice", a.ID)
	}
	it, ok := c.itemRow[a.ItemID]
	if !ok {
		return fmt.Errorf("ad %d: item %d is not in the item table", a.ID, a.ItemID)
	}
	if int(a.Product) >= len(c.Cfg.Products) {
		return fmt.Errorf("ad %d: product %d of %d", a.ID, a.Product, len(c.Cfg.Products))
	}
	for i, v := range a.Dense {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("ad %d: dense feature %d is %v", a.ID, i, v)
		}
	}
	if math.IsNaN(float64(a.Bid)) || math.IsInf(float64(a.Bid), 0) {
		return fmt.Errorf("ad %d: bid is %v", a.ID, a.Bid)
	}
	c.adRow[a.ID] = int32(len(c.AdIDs))
	c.AdIDs = append(c.AdIDs, a.ID)
	c.AdItem = append(c.AdItem, it)
	c.AdCats = append(c.AdCats, a.Cats...)
	c.AdDense = append(c.AdDense, a.Dense...)
	c.Bid = append(c.Bid, a.Bid)
	c.Product = append(c.Product, a.Product)
	c.Eligible = append(c.Eligible, a.Eligible)
	c.Active = append(c.Active, a.Active)
	c.Vectors = append(c.Vectors, a.Vectors...)
	return nil
}

// WithAds returns a catalog of c's version with c's towers, schema and
// items and only the given ads, without indexes: what a root ranks the
// candidates it fetched from their shards with.
func (c *Catalog) WithAds(ads []*snapshot.Ad) (*Catalog, error) {
	n := &Catalog{Version: c.Version, Manifest: c.Manifest, Cfg: c.Cfg, Schema: c.Schema, Tasks: c.Tasks, OutDim: c.OutDim,
		adRow: make(map[int64]int32, len(ads)), itemRow: c.itemRow, ItemIDs: c.ItemIDs, ItemEmb: c.ItemEmb}
	for _, r := range c.Routes {
		rr := *r
		rr.Graph, rr.Ads, rr.Exact = nil, nil, nil
		n.Routes = append(n.Routes, &rr)
	}
	for _, a := range ads {
		if err := n.addAd(a); err != nil {
			return nil, fmt.Errorf("catalog: %s: %w", c.Version, err)
		}
	}
	return n, nil
}

// routeVersion is the L1 version the refresh job recorded for route (its
// report in the manifest's extra details), or the model version and route.
func routeVersion(m snapshot.Manifest, route string) string {
	var reps []struct {
		Route     string `json:"route"`
		Task      string `json:"task"`
		L1Version string `json:"l1_version"`
	}
	if json.Unmarshal(m.Extra, &reps) == nil {
		for _, r := range reps {
			if r.Route == route && r.L1Version != "" {
				return r.L1Version
			}
		}
	}
	return m.ModelVersion + "/" + route
}

// indexTask is the task whose a_t the route's index holds (the refresh
// job's report; click when it says nothing).
func indexTask(m snapshot.Manifest, route string) int {
	var reps []struct {
		Route string `json:"route"`
		Task  string `json:"task"`
	}
	if json.Unmarshal(m.Extra, &reps) == nil {
		for _, r := range reps {
			if r.Route == route {
				if t := slices.Index(m.Tasks, r.Task); t >= 0 {
					return t
				}
			}
		}
	}
	return max(slices.Index(m.Tasks, "click"), 0)
}

// AdRow returns the row of ad id.
func (c *Catalog) AdRow(id int64) (int32, bool) {
	r, ok := c.adRow[id]
	return r, ok
}

// Content returns item id's content embedding (query.Items).
func (c *Catalog) Content(id int64) ([]float32, bool) {
	r, ok := c.itemRow[id]
	if !ok {
		return nil, false
	}
	w := c.Schema.Feat.ContentDim
	return c.ItemEmb[int(r)*w : (int(r)+1)*w], true
}

// AdContent returns the content embedding of ad row a's item.
func (c *Catalog) AdContent(a int32) []float32 {
	w := c.Schema.Feat.ContentDim
	it := int(c.AdItem[a])
	return c.ItemEmb[it*w : (it+1)*w]
}

// Vector returns a_t of ad row a for route position r and task t.
func (c *Catalog) Vector(a int32, r, t int) []float32 {
	nt, od := len(c.Tasks), c.OutDim
	o := ((int(a)*len(c.Routes)+r)*nt + t) * od
	return c.Vectors[o : o+od]
}

// RouteNamed returns the route called name, nil when there is none.
func (c *Catalog) RouteNamed(name string) *Route {
	for _, r := range c.Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

var _ query.Items = (*Catalog)(nil)
