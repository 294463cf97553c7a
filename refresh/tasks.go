package refresh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/store"
)

// JobIndexEnv is the variable a Kubernetes Indexed Job sets to the index
// of each of its pods.
const JobIndexEnv = "JOB_COMPLETION_INDEX"

// TaskIndex resolves a task's index: the flag's value when it is set,
// else $JOB_COMPLETION_INDEX, else an error saying both are missing. flag
// names the flag in errors ("--part").
func TaskIndex(flag, value string) (int, error) {
	from := flag
	if value == "" {
		value, from = os.Getenv(JobIndexEnv), "$"+JobIndexEnv
		if value == "" {
			return 0, fmt.Errorf("refresh: %s is not given and %s is not set: pass %s i, or run as a Kubernetes Indexed Job", flag, JobIndexEnv, flag)
		}
	}
	i, err := strconv.Atoi(value)
	if err != nil || i < 0 {
		return 0, fmt.Errorf("refresh: %s = %q, want an index 0, 1, …", from, value)
	}
	return i, nil
}

// EmbedName is the store name of embed part i of n.
func EmbedName(part, parts int) string { return fmt.Sprintf("embed/%d-of-%d", part, parts) }

// IndexName is the store name of the index of shard s of shards of a
// route (shards = 1: the whole route's).
func IndexName(route string, s, shards int) string {
	return fmt.Sprintf("index/%s/%d-of-%d", route, s, shards)
}

// PartRange is the ad rows [lo, hi) of part i of n over a catalog of rows
// rows: contiguous ranges in catalog order, lo = ⌊i·rows/n⌋.
func PartRange(rows, part, parts int) (lo, hi int) {
	return part * rows / parts, (part + 1) * rows / parts
}

// parseOf parses "<i>-of-<n>".
func parseOf(s string) (i, n int, ok bool) {
	a, b, found := strings.Cut(s, "-of-")
	if !found {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n || strconv.Itoa(i) != a || strconv.Itoa(n) != b {
		return 0, 0, false
	}
	return i, n, true
}

func checkIndex(what string, i, n int) error {
	if n < 1 || i < 0 || i >= n {
		return fmt.Errorf("refresh: %s %d of %d: want 0 ≤ %s < %d", what, i, n, what, max(n, 1))
	}
	return nil
}

// Embed is the embed task: every route's ad tower over the ad rows of
// part of parts (PartRange), written to st as EmbedName(part, parts).
// Rerunning a part overwrites its artifact. o.DBDir is not used.
func Embed(ctx context.Context, o Options, st store.Store, part, parts int) error {
	if err := checkIndex("part", part, parts); err != nil {
		return err
	}
	j, err := load(o)
	if err != nil {
		return err
	}
	n := len(j.d.AdIDs)
	lo, hi := PartRange(n, part, parts)
	fmt.Fprintf(j.logw, "refresh: embed part %d of %d: ad rows [%d, %d) of %d\n", part, parts, lo, hi, n)
	vectors, err := j.embedRows(ctx, lo, hi)
	if err != nil {
		return err
	}
	p := &embedPart{Part: part, Parts: parts, Lo: lo, Hi: hi, Ads: n, ModelVersion: j.mf.Version, SchemaHash: j.mf.SchemaHash,
		Routes: j.routes, Tasks: j.nt, OutDim: j.od, IDs: j.d.AdIDs[lo:hi], Vectors: vectors}
	name := EmbedName(part, parts)
	if err := st.Put(ctx, name, p.marshal()); err != nil {
		return err
	}
	fmt.Fprintf(j.logw, "refresh: wrote %s\n", name)
	return nil
}

// loadEmbeddings reads every embed part from st into the catalog's vector
// matrix (ads × routes × tasks × d): all parts of one count n must be
// there, each intact and made from this job's model and catalog.
func (j *job) loadEmbeddings(ctx context.Context, st store.Store) ([]float32, error) {
	names, err := st.List(ctx, "embed/")
	if err != nil {
		return nil, err
	}
	counts := map[int]bool{}
	have := map[string]bool{}
	for _, name := range names {
		if _, n, ok := parseOf(strings.TrimPrefix(name, "embed/")); ok {
			counts[n] = true
			have[name] = true
		}
	}
	switch len(counts) {
	case 0:
		return nil, errors.New("refresh: the store holds no embed parts (embed/<i>-of-<n>): run the embed tasks first")
	case 1:
	default:
		return nil, fmt.Errorf("refresh: the store holds embed parts of %v different part counts; one run's store holds one", slices.Sorted(maps.Keys(counts)))
	}
	parts := slices.Collect(maps.Keys(counts))[0]
	var missing []string
	for i := range parts {
		if name := EmbedName(i, parts); !have[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("refresh: embed parts missing from the store: %s (of %d): rerun them", strings.Join(missing, ", "), parts)
	}
	n, st1 := len(j.d.AdIDs), j.stride()
	vectors := make([]float32, n*st1)
	for i := range parts {
		name := EmbedName(i, parts)
		b, err := st.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		p, err := unmarshalEmbed(b)
		if err != nil {
			return nil, fmt.Errorf("refresh: %s: %w: rerun embed part %d", name, err, i)
		}
		lo, hi := PartRange(n, i, parts)
		switch {
		case p.Part != i || p.Parts != parts:
			return nil, fmt.Errorf("refresh: %s holds part %d of %d", name, p.Part, p.Parts)
		case p.ModelVersion != j.mf.Version || p.SchemaHash != j.mf.SchemaHash:
			return nil, fmt.Errorf("refresh: %s was embedded with model version %s, this run has %s", name, p.ModelVersion, j.mf.Version)
		case p.Ads != n || p.Lo != lo || p.Hi != hi || !slices.Equal(p.IDs, j.d.AdIDs[lo:hi]):
			return nil, fmt.Errorf("refresh: %s covers rows [%d, %d) of %d ads, this catalog's part is [%d, %d) of %d (or its ad ids differ)", name, p.Lo, p.Hi, p.Ads, lo, hi, n)
		case !slices.Equal(p.Routes, j.routes) || p.Tasks != j.nt || p.OutDim != j.od:
			return nil, fmt.Errorf("refresh: %s has routes %v × %d tasks × d=%d, this run %v × %d × %d", name, p.Routes, p.Tasks, p.OutDim, j.routes, j.nt, j.od)
		}
		copy(vectors[lo*st1:hi*st1], p.Vectors)
	}
	fmt.Fprintf(j.logw, "refresh: read %d embed parts (%d ads)\n", parts, n)
	return vectors, nil
}

// Build is the build task: the HNSW index of shard s of shards of every
// route, over the ads package shard places there, from all embed parts in
// st, written as IndexName(route, s, shards). With shards = 1 it is the
// whole route's index, the one Run builds. o.DBDir is not used.
func Build(ctx context.Context, o Options, st store.Store, s, shards int) error {
	if err := checkIndex("shard", s, shards); err != nil {
		return err
	}
	j, err := load(o)
	if err != nil {
		return err
	}
	vectors, err := j.loadEmbeddings(ctx, st)
	if err != nil {
		return err
	}
	for ri, r := range j.routes {
		b, err := j.build(ctx, ri, vectors, s, shards)
		if err != nil {
			return err
		}
		p := &indexPart{Route: r, ModelVersion: j.mf.Version, Shard: s, Shards: shards, Seconds: b.seconds, Graph: b.graph, IDs: b.ids}
		name := IndexName(r, s, shards)
		if err := st.Put(ctx, name, p.marshal()); err != nil {
			return err
		}
		fmt.Fprintf(j.logw, "refresh: wrote %s (%d ads)\n", name, len(b.ids))
	}
	return nil
}

// readIndex reads and checks one index artifact: intact, of this route
// and model version, holding exactly the ads shard s of shards should
// hold in route order, and a graph that decodes to as many nodes.
func (j *job) readIndex(ctx context.Context, st store.Store, ri, s, shards int) (*built, error) {
	r := j.routes[ri]
	name := IndexName(r, s, shards)
	b, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	p, err := unmarshalIndex(b)
	if err != nil {
		return nil, fmt.Errorf("refresh: %s: %w: rerun build shard %d of %d", name, err, s, shards)
	}
	if p.Route != r || p.Shard != s || p.Shards != shards || p.ModelVersion != j.mf.Version {
		return nil, fmt.Errorf("refresh: %s holds route %s shard %d of %d of model version %s", name, p.Route, p.Shard, p.Shards, p.ModelVersion)
	}
	all, _ := j.members(ri)
	rows, err := j.shardRows(all, s, shards)
	if err != nil {
		return nil, err
	}
	want := make([]int64, len(rows))
	for i, a := range rows {
		want[i] = j.d.AdIDs[a]
	}
	if !slices.Equal(p.IDs, want) {
		return nil, fmt.Errorf("refresh: %s indexes %d ads, this catalog places %d others there: rebuild it", name, len(p.IDs), len(want))
	}
	g, err := index.Unmarshal(p.Graph)
	if err != nil {
		return nil, fmt.Errorf("refresh: %s: %w", name, err)
	}
	if g.Len() != len(p.IDs) || (g.Len() > 0 && g.Dim() != j.od) {
		return nil, fmt.Errorf("refresh: %s: a graph of %d nodes for %d ids", name, g.Len(), len(p.IDs))
	}
	return &built{shard: s, shards: shards, graph: p.Graph, ids: p.IDs, seconds: p.Seconds}, nil
}

// Publish is the publish task: from the embed parts and index artifacts
// in st it writes the version o.Version into o.DBDir as Run does, checks
// recall, flips CURRENT and garbage-collects.
//
// Per route it takes the whole-route index from IndexName(route, 0, 1)
// and, when the store holds none, builds it here from the embeddings
// (what build --shards 1 would write). Every shard count S > 1 that has
// an index artifact in the store is published as the ShardBlob blobs of
// all S shards of every route (all must be there) and listed in
// Manifest.Shards. A rerun under the same o.Version rewrites a version a
// killed attempt left unfinished and succeeds at once when it is live.
func Publish(ctx context.Context, o Options, st store.Store) (*Report, error) {
	start := time.Now()
	j, err := load(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.o.DBDir, 0o755); err != nil {
		return nil, err
	}
	vectors, err := j.loadEmbeddings(ctx, st)
	if err != nil {
		return nil, err
	}
	whole := make([]*built, len(j.routes))
	counts := map[int]bool{}
	for ri, r := range j.routes {
		whole[ri], err = j.readIndex(ctx, st, ri, 0, 1)
		if errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(j.logw, "refresh: route %s: the store holds no %s: building the whole-route index here\n", r, IndexName(r, 0, 1))
			whole[ri], err = j.build(ctx, ri, vectors, 0, 1)
		}
		if err != nil {
			return nil, err
		}
		names, err := st.List(ctx, "index/"+r+"/")
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if _, n, ok := parseOf(strings.TrimPrefix(name, "index/"+r+"/")); ok && n > 1 {
				counts[n] = true
			}
		}
	}
	shards := map[int][][]*built{}
	for _, S := range slices.Sorted(maps.Keys(counts)) {
		per := make([][]*built, len(j.routes))
		for ri, r := range j.routes {
			for s := range S {
				b, err := j.readIndex(ctx, st, ri, s, S)
				if errors.Is(err, store.ErrNotFound) {
					return nil, fmt.Errorf("refresh: the store holds shard indexes of %d shards but not %s: rerun build --shard %d --shards %d", S, IndexName(r, s, S), s, S)
				}
				if err != nil {
					return nil, err
				}
				per[ri] = append(per[ri], b)
			}
		}
		shards[S] = per
		fmt.Fprintf(j.logw, "refresh: publishing the per-shard indexes of %d shards\n", S)
	}
	return j.publish(ctx, start, vectors, whole, shards, true)
}
