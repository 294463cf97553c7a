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
	"slices"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/query"
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
	s, err := snapshot.Open(dbdir, version)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	m := s.Manifest
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
		if blob, err = s.Blob("route/" + name + "/index"); err != nil {
			return nil, err
		}
		if r.Graph, err = index.Unmarshal(blob); err != nil {
			return nil, fmt.Errorf("catalog: %s: route %s: index: %w", s.Dir, name, err)
		}
		if r.Graph.Dim() != m.OutDim {
			return nil, fmt.Errorf("catalog: %s: route %s: index of dimension %d, the snapshot's vectors have %d", s.Dir, name, r.Graph.Dim(), m.OutDim)
		}
		ids, err := s.Blob("route/" + name + "/ids")
		if err != nil {
			return nil, err
		}
		if len(ids) != 8*r.Graph.Len() {
			return nil, fmt.Errorf("catalog: %s: route %s: %d id bytes for %d index nodes", s.Dir, name, len(ids), r.Graph.Len())
		}
		r.Ads = make([]int32, r.Graph.Len()) // resolved once the ad table is read
		idBlobs = append(idBlobs, ids)
		r.L1Version = routeVersion(m, name)
		r.Task = indexTask(m, name)
		c.Routes = append(c.Routes, r)
		if c.Cfg == nil {
			c.Cfg = r.User.Cfg
		}
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
		c.ItemEmb = append(c.ItemEmb, content...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	nac, nad := len(c.Schema.Feat.AdCat), len(c.Schema.Feat.AdDense)
	nv := len(m.Routes) * len(m.Tasks) * m.OutDim
	err = s.Ads(func(a *snapshot.Ad) error {
		if len(a.Cats) != nac || len(a.Dense) != nad || len(a.Vectors) != nv {
			return fmt.Errorf("catalog: %s: ad %d has %d categorical, %d dense and %d vector values, the schema %d, %d and %d",
				s.Dir, a.ID, len(a.Cats), len(a.Dense), len(a.Vectors), nac, nad, nv)
		}
		it, ok := c.itemRow[a.ItemID]
		if !ok {
			return fmt.Errorf("catalog: %s: ad %d: item %d is not in the item table", s.Dir, a.ID, a.ItemID)
		}
		if int(a.Product) >= len(c.Cfg.Products) {
			return fmt.Errorf("catalog: %s: ad %d: product %d of %d", s.Dir, a.ID, a.Product, len(c.Cfg.Products))
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
	})
	if err != nil {
		return nil, err
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
	}
	return c, nil
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
