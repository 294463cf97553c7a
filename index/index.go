package index

import (
	"errors"
	"fmt"
	"math"
	"runtime"
)

// Metric says how vectors are compared.
type Metric int

const (
	// L2 ranks by squared Euclidean distance, smallest first. Result
	// scores are squared distances.
	L2 Metric = iota
	// Cosine ranks by cosine similarity, largest first. Vectors are
	// normalised at build time and queries at search time; result scores
	// are similarities in [−1, 1].
	Cosine
	// InnerProduct ranks by inner product, largest first (maximum inner
	// product search). The graph is built in L2 over vectors extended by
	// one coordinate, √(N² − ‖a‖²) with N the largest norm, and searched
	// with the query extended by 0; result scores are inner products.
	InnerProduct
	// RawIP ranks by inner product too, but builds and searches the graph
	// with −⟨q,a⟩ as if it were a distance, without the transform. It is
	// kept to be measured against InnerProduct.
	RawIP
)

// String returns the metric's name.
func (m Metric) String() string {
	switch m {
	case L2:
		return "l2"
	case Cosine:
		return "cosine"
	case InnerProduct:
		return "ip"
	case RawIP:
		return "raw-ip"
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// higherIsBetter reports whether larger scores rank first.
func (m Metric) higherIsBetter() bool { return m != L2 }

func (m Metric) valid() bool { return m >= L2 && m <= RawIP }

// Defaults of Config.
const (
	DefaultM              = 16
	DefaultEfConstruction = 200
)

// Limits.
const (
	maxM      = 256 // neighbours per node above layer 0 (512 at layer 0)
	maxEfC    = 1 << 16
	maxLevels = 31 // highest layer a node can reach
	maxNodes  = math.MaxInt32
)

// Config holds the build parameters.
type Config struct {
	// M is the number of neighbours a node keeps on each layer above 0;
	// layer 0 keeps up to 2M. 0 means DefaultM.
	M int
	// EfConstruction is the size of the result list of the searches that
	// place each new node. 0 means DefaultEfConstruction; values below M
	// are raised to M.
	EfConstruction int
	// Metric is the similarity the graph serves.
	Metric Metric
	// Seed picks the layer of every node (through a hash of seed and id).
	Seed uint64
}

func (c Config) withDefaults() (Config, error) {
	if c.M == 0 {
		c.M = DefaultM
	}
	if c.EfConstruction == 0 {
		c.EfConstruction = DefaultEfConstruction
	}
	var errs []error
	if c.M < 2 || c.M > maxM {
		errs = append(errs, fmt.Errorf("index: Config.M = %d, want 2..%d", c.M, maxM))
	}
	if c.EfConstruction < 1 || c.EfConstruction > maxEfC {
		errs = append(errs, fmt.Errorf("index: Config.EfConstruction = %d, want 1..%d", c.EfConstruction, maxEfC))
	}
	if !c.Metric.valid() {
		errs = append(errs, fmt.Errorf("index: Config.Metric = %d is not a known metric", int(c.Metric)))
	}
	c.EfConstruction = max(c.EfConstruction, c.M)
	return c, errors.Join(errs...)
}

// Result is one hit of a search.
type Result struct {
	ID    int32   // the row of the vector in the slice given to Build
	Score float32 // squared distance for L2, similarity or inner product otherwise
}

// Graph is an HNSW index. It is immutable once built or decoded: any number
// of goroutines may search it at once, each with its own Searcher.
type Graph struct {
	metric Metric
	dim    int // the caller's dimension
	dimS   int // stored columns: dim, plus one for InnerProduct
	stride int // dimS rounded up to a multiple of 8
	n      int
	m, m0  int // neighbour capacity above layer 0, and at layer 0
	efc    int
	seed   uint64
	// maxNorm2 is N², the largest squared norm, for InnerProduct.
	maxNorm2 float32

	vecs  []float32 // n rows of stride floats, zero padded
	norms []float32 // ‖row‖² (0 for RawIP, so that the distance is −2⟨q,a⟩)

	levels []uint8 // top layer of each node
	// links0 holds layer 0: node i owns links0[i*(m0+1):(i+1)*(m0+1)], a
	// count followed by m0 slots.
	links0 []int32
	// upper holds layers ≥ 1: node i with level L ≥ 1 owns L blocks of
	// m+1 int32 (count, then m slots) from upperOff[i], layer 1 first;
	// upperOff[i] is −1 for nodes on layer 0 only.
	upperOff []int
	upper    []int32

	entry    int32 // the node where every search starts; −1 when empty
	maxLevel int   // its level
}

// Len returns the number of vectors in the graph.
func (g *Graph) Len() int { return g.n }

// Dim returns the dimension of the vectors and queries.
func (g *Graph) Dim() int { return g.dim }

// Metric returns the metric the graph was built for.
func (g *Graph) Metric() Metric { return g.metric }

// Config returns the parameters the graph was built with.
func (g *Graph) Config() Config {
	return Config{M: g.m, EfConstruction: g.efc, Metric: g.metric, Seed: g.seed}
}

// Levels returns the number of layers, the entry point's level plus one
// (0 for an empty graph).
func (g *Graph) Levels() int {
	if g.entry < 0 {
		return 0
	}
	return g.maxLevel + 1
}

// block returns node id's list on layer lc: a count followed by its
// slots.
func (g *Graph) block(id int32, lc int) []int32 {
	if lc == 0 {
		o := int(id) * (g.m0 + 1)
		return g.links0[o : o+g.m0+1 : o+g.m0+1]
	}
	o := g.upperOff[id] + (lc-1)*(g.m+1)
	return g.upper[o : o+g.m+1 : o+g.m+1]
}

// row returns the stored row of node id.
func (g *Graph) row(id int32) []float32 {
	o := int(id) * g.stride
	return g.vecs[o : o+g.stride : o+g.stride]
}

// capacity returns the neighbour capacity of layer lc.
func (g *Graph) capacity(lc int) int {
	if lc == 0 {
		return g.m0
	}
	return g.m
}

// Build indexes the n = len(vectors)/dim row-major vectors; the i-th gets
// id i. threads = 1 builds serially, inserting the vectors in id order:
// the graph is then a function of the vectors and cfg alone. threads > 1
// inserts on that many goroutines, and threads ≤ 0 uses GOMAXPROCS; the
// parallel graph depends on scheduling but is of the same quality.
//
// Build returns an error, and no graph, when dim ≤ 0, len(vectors) is not
// a multiple of dim, a value is NaN or infinite, a squared norm overflows
// float32, a Cosine vector is zero, or cfg is invalid.
func Build(vectors []float32, dim int, cfg Config, threads int) (*Graph, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g, err := newGraph(vectors, dim, cfg)
	if err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	g.build(threads)
	return g, nil
}

// newGraph validates the input and lays out the storage: rows, norms,
// levels and empty neighbour lists.
func newGraph(vectors []float32, dim int, cfg Config) (*Graph, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("index: dim = %d, want > 0", dim)
	}
	if len(vectors)%dim != 0 {
		return nil, fmt.Errorf("index: len(vectors) = %d is not a multiple of dim = %d", len(vectors), dim)
	}
	n := len(vectors) / dim
	if n > maxNodes {
		return nil, fmt.Errorf("index: %d vectors, at most %d fit int32 ids", n, maxNodes)
	}
	if dim > 1<<24 {
		return nil, fmt.Errorf("index: dim = %d, want at most %d", dim, 1<<24)
	}
	for i, v := range vectors {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("index: vector %d column %d is %v", i/dim, i%dim, v)
		}
	}
	g := &Graph{
		metric: cfg.Metric,
		dim:    dim,
		dimS:   dim,
		n:      n,
		m:      cfg.M,
		m0:     2 * cfg.M,
		efc:    cfg.EfConstruction,
		seed:   cfg.Seed,
		entry:  -1,
	}
	if g.metric == InnerProduct {
		g.dimS = dim + 1
	}
	g.stride = (g.dimS + 7) &^ 7
	g.vecs = make([]float32, n*g.stride)
	for i := range n {
		copy(g.vecs[i*g.stride:], vectors[i*dim:(i+1)*dim])
	}
	// Squared norms of the raw rows, in float64 for the checks.
	switch g.metric {
	case Cosine:
		for i := range n {
			r := g.vecs[i*g.stride : i*g.stride+dim]
			s := norm2(r)
			if s == 0 {
				return nil, fmt.Errorf("index: vector %d is zero and has no direction (cosine)", i)
			}
			if math.IsInf(s, 0) || s > math.MaxFloat32 {
				return nil, fmt.Errorf("index: vector %d: squared norm overflows float32", i)
			}
			inv := 1 / math.Sqrt(s)
			for j := range r {
				r[j] = float32(float64(r[j]) * inv)
			}
		}
	case InnerProduct:
		sq := make([]float64, n)
		maxSq := 0.0
		for i := range n {
			s := norm2(g.vecs[i*g.stride : i*g.stride+dim])
			if math.IsInf(s, 0) || s > math.MaxFloat32/4 {
				return nil, fmt.Errorf("index: vector %d: squared norm overflows float32", i)
			}
			sq[i] = s
			maxSq = max(maxSq, s)
		}
		g.maxNorm2 = float32(maxSq)
		for i := range n {
			g.vecs[i*g.stride+dim] = float32(math.Sqrt(max(0, maxSq-sq[i])))
		}
	default:
		for i := range n {
			if s := norm2(g.vecs[i*g.stride : i*g.stride+dim]); math.IsInf(s, 0) || s > math.MaxFloat32/4 {
				return nil, fmt.Errorf("index: vector %d: squared norm overflows float32", i)
			}
		}
	}
	g.computeNorms()
	g.levels = make([]uint8, n)
	mL := 1 / math.Log(float64(g.m))
	for i := range n {
		g.levels[i] = uint8(levelFor(g.seed, i, mL))
	}
	g.layoutLinks()
	return g, nil
}

// computeNorms fills norms from the stored rows.
func (g *Graph) computeNorms() {
	g.norms = make([]float32, g.n)
	if g.metric == RawIP {
		return
	}
	for i := range g.n {
		r := g.row(int32(i))
		g.norms[i] = dot(r, r)
	}
}

// layoutLinks allocates empty neighbour lists for the levels in g.levels.
func (g *Graph) layoutLinks() {
	g.links0 = make([]int32, g.n*(g.m0+1))
	g.upperOff = make([]int, g.n)
	total := 0
	for i, l := range g.levels {
		if l == 0 {
			g.upperOff[i] = -1
			continue
		}
		g.upperOff[i] = total
		total += int(l) * (g.m + 1)
	}
	g.upper = make([]int32, total)
}

func norm2(r []float32) float64 {
	s := 0.0
	for _, v := range r {
		s += float64(v) * float64(v)
	}
	return s
}

// levelFor draws node id's top layer from the exponential distribution of
// the paper, ⌊−ln U · mL⌋, with U uniform in (0, 1] taken from a hash of
// (seed, id): the same for a seed whatever the insertion order.
func levelFor(seed uint64, id int, mL float64) int {
	h := mix64(seed ^ mix64(uint64(id)+0x9e3779b97f4a7c15))
	u := (float64(h>>11) + 1) / (1 << 53)
	l := int(-math.Log(u) * mL)
	return min(l, maxLevels)
}

// mix64 is the SplitMix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
