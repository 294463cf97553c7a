package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu"
	"github.com/tandemml/tandem/modeldir"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/query"
	"github.com/tandemml/tandem/ranker"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/snapshot"
)

// Options configure a Server. The zero value of each optional field gives
// its documented default.
type Options struct {
	// ModelDir and DBDir are required: L2 from MODELDIR/CURRENT, the user
	// towers, ads, items and indexes from DBDIR/CURRENT.
	ModelDir, DBDir string
	// Retrieval searches the indexes (HNSW, the default) or scans (Exact).
	Retrieval retrieve.Mode
	// Ef is the HNSW beam width (default K′ = max(4k, 200)).
	Ef int
	// MaxInFlight bounds the Retrieve and Rank calls served at once
	// (default 4 × GOMAXPROCS); beyond it calls fail with ResourceExhausted.
	MaxInFlight int
	// Poll is how often the watcher reads the two CURRENT files (default
	// 2 s); negative disables the watcher (Reload still works).
	Poll time.Duration
	// Engine are the load options of every model.
	Engine engine.Options
	// Device, when set, runs the L1 user towers on the GPU (gpu.Select
	// gives nil on a host without one: the CPU engine).
	Device *gpu.Device
	// Log receives one line per reload and per failure (default: discard).
	Log *slog.Logger
	// Cluster, when set, makes this a root (serve --role=root): it holds
	// the user towers and L2, and Retrieve and Rank fan out to the shards
	// for the ads (docs/SCALING.md).
	Cluster *Cluster
}

// Server implements tandem.v1.Tandem.
type Server struct {
	tandemv1.UnimplementedTandemServer
	o        Options
	live     atomic.Pointer[Set]
	prev     atomic.Pointer[Set]
	sem      chan struct{}
	pools    chan *engine.Pool // for splitting large Rank batches over cores
	m        *metrics
	Health   *health.Server
	log      *slog.Logger
	reload   sync.Mutex             // one load at a time
	shardErr atomic.Pointer[string] // a root's last failure to ask the shards
	watched  struct {
		sync.Mutex
		snap, model string // the CURRENT names the watcher last acted on
	}
}

// New loads the live versions and returns a server ready to register.
func New(o Options) (*Server, error) {
	if o.ModelDir == "" || o.DBDir == "" {
		return nil, errors.New("serve: the model directory and the snapshot directory are required")
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4 * runtime.GOMAXPROCS(0)
	}
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Cluster != nil && o.Retrieval == retrieve.GPUExact {
		return nil, errors.New("serve: a root searches its shards: --retrieval gpu-exact is for --role=all")
	}
	if o.Retrieval == retrieve.GPUExact && o.Device == nil {
		return nil, errors.New("serve: --retrieval gpu-exact needs a GPU (--device gpu, or auto on a host with one)")
	}
	s := &Server{o: o, sem: make(chan struct{}, o.MaxInFlight), m: newMetrics(), Health: health.NewServer(), log: o.Log}
	if n := runtime.GOMAXPROCS(0); n > 1 {
		s.pools = make(chan *engine.Pool, n)
		for range n {
			s.pools <- engine.NewPool(n)
		}
	}
	snap, model, err := s.currentNames()
	if err != nil {
		return nil, err
	}
	set, err := LoadSet(o.DBDir, snap, o.ModelDir, model, o.Engine, s.backend())
	if err != nil {
		return nil, err
	}
	s.swap(set)
	s.watched.snap, s.watched.model = snap, model
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.Health.SetServingStatus(tandemv1.Tandem_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.log.Info("serving", "snapshot", set.Snapshot(), "model", set.Model(), "ads", len(set.Cat.AdIDs), "retrieval", o.Retrieval.String())
	return s, nil
}

func (s *Server) currentNames() (snap, model string, err error) {
	if snap, err = snapshot.Current(s.o.DBDir); err != nil {
		return "", "", err
	}
	if snap == "" {
		return "", "", fmt.Errorf("serve: %s has no live snapshot (run tandem refresh)", s.o.DBDir)
	}
	if model, err = modeldir.Current(s.o.ModelDir); err != nil {
		return "", "", err
	}
	if s.o.Cluster != nil {
		snap = s.shardVersion(snap)
	}
	return snap, model, nil
}

// shardVersion is the snapshot a root serves: the version every shard
// reports active, not DBDIR/CURRENT, which publish flips before the
// rollout has staged the version on the shards. While the shards
// disagree (a rollout is activating) or cannot be asked, the root keeps
// the version it serves, or starts on current.
func (s *Server) shardVersion(current string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := s.o.Cluster.ActiveVersion(ctx)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	// One line per change, not one per poll while a shard is down.
	if prev := s.shardErr.Swap(&msg); (prev == nil || *prev != msg) && msg != "" {
		s.log.Warn("cannot ask the shards for their active snapshot", "err", err)
	}
	if v != "" {
		return v
	}
	if live := s.Live(); live != nil {
		return live.Snapshot()
	}
	return current
}

// backend is where LoadSet puts the device parts.
func (s *Server) backend() Backend {
	return Backend{Device: s.o.Device, Exact: s.o.Retrieval == retrieve.GPUExact, Towers: s.o.Cluster != nil}
}

// Live returns the Set being served.
func (s *Server) Live() *Set { return s.live.Load() }

func (s *Server) swap(set *Set) {
	old := s.live.Swap(set)
	if old != nil {
		// The set before old leaves memory (its device towers free once
		// their in-flight calls finish); a rollback swaps prev in, and
		// then the returned set is the live one.
		if gone := s.prev.Swap(old); gone != nil && gone != set {
			gone.Close()
		}
		s.m.version.DeleteLabelValues(old.Snapshot(), old.Model())
	}
	s.m.version.WithLabelValues(set.Snapshot(), set.Model()).Set(1)
}

// splitRows is the smallest Rank batch split over cores.
const splitRows = 128

// splitPool returns an idle pool for a Rank of n candidates, nil when the
// batch is small, the machine has one core, or every pool is busy (then
// the call runs on its own goroutine: under load, splitting would only
// move work between cores).
func (s *Server) splitPool(n int) *engine.Pool {
	if s.pools == nil || n < splitRows {
		return nil
	}
	select {
	case p := <-s.pools:
		return p
	default:
		return nil
	}
}

// Close releases the pools' goroutines; call it once no call runs (Run
// does when it returns).
func (s *Server) Close() {
	if s.pools == nil {
		return
	}
	for range cap(s.pools) {
		(<-s.pools).Close()
	}
	s.pools = nil
}

// Shutdown marks every service NOT_SERVING (the first step of a drain).
func (s *Server) Shutdown() { s.Health.Shutdown() }

// Watch polls the CURRENT files until ctx ends and reloads when either
// names a new version. A load that fails is not retried until a CURRENT
// file changes again.
func (s *Server) Watch(ctx context.Context) {
	if s.o.Poll < 0 {
		return
	}
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap, model, err := s.currentNames()
		if err != nil {
			s.log.Warn("reload: cannot read CURRENT", "err", err)
			continue
		}
		s.watched.Lock()
		same := snap == s.watched.snap && model == s.watched.model
		s.watched.snap, s.watched.model = snap, model
		s.watched.Unlock()
		if same {
			continue
		}
		if _, err := s.load(snap, model); err != nil {
			s.log.Error("reload failed; still serving the old versions", "snapshot", snap, "model", model, "err", err)
		}
	}
}

// load makes (snap, model) live: the rollback target at once when it
// holds those versions, else a fresh load. changed is false when they are
// live already.
func (s *Server) load(snap, model string) (changed bool, err error) {
	s.reload.Lock()
	defer s.reload.Unlock()
	live := s.live.Load()
	if live.Snapshot() == snap && live.Model() == model {
		return false, nil
	}
	if p := s.prev.Load(); p != nil && p.Snapshot() == snap && p.Model() == model {
		s.swap(p)
		s.m.reloads.WithLabelValues("rollback").Inc()
		s.log.Info("reload: swapped back to the previous set", "snapshot", snap, "model", model)
		return true, nil
	}
	t0 := time.Now()
	set, err := LoadSet(s.o.DBDir, snap, s.o.ModelDir, model, s.o.Engine, s.backend())
	if err != nil {
		s.m.reloads.WithLabelValues("failed").Inc()
		return false, err
	}
	s.swap(set)
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("reload: swapped in", "snapshot", snap, "model", model, "seconds", time.Since(t0).Seconds())
	return true, nil
}

// Reload implements the RPC.
func (s *Server) Reload(ctx context.Context, req *tandemv1.ReloadRequest) (*tandemv1.ReloadResponse, error) {
	snap, model, err := s.currentNames()
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if v := req.GetSnapshotVersion(); v != "" {
		snap = v
	}
	if v := req.GetModelVersion(); v != "" {
		model = v
	}
	changed, err := s.load(snap, model)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "reload: %v (still serving snapshot %s, model %s)", err, s.Live().Snapshot(), s.Live().Model())
	}
	return &tandemv1.ReloadResponse{Changed: changed, Info: s.info()}, nil
}

// GetModelInfo implements the RPC.
func (s *Server) GetModelInfo(ctx context.Context, _ *tandemv1.GetModelInfoRequest) (*tandemv1.ModelInfo, error) {
	return s.info(), nil
}

func (s *Server) info() *tandemv1.ModelInfo {
	set := s.Live()
	c := set.Cat
	in := &tandemv1.ModelInfo{SnapshotVersion: c.Version, SnapshotModelVersion: c.Manifest.ModelVersion,
		L1Versions: map[string]string{}, L2ModelVersion: set.Model(), L2Versions: map[string]string{},
		SchemaHash: c.Manifest.SchemaHash, Ads: int64(len(c.AdIDs)), Items: int64(len(c.ItemEmb) / max(c.Schema.Feat.ContentDim, 1)),
		LoadedAtMs: set.LoadedAt.UnixMilli()}
	for _, r := range c.Routes {
		in.L1Versions[r.Name] = r.L1Version
	}
	for sf, sum := range set.Models.Files {
		in.L2Versions[sf] = set.Model() + "/" + sum[:min(12, len(sum))]
	}
	if p := s.prev.Load(); p != nil {
		in.PreviousSnapshotVersion, in.PreviousL2ModelVersion = p.Snapshot(), p.Model()
	}
	return in
}

// admit takes an admission slot or fails at once.
func (s *Server) admit(method string) (release func(), err error) {
	select {
	case s.sem <- struct{}{}:
		s.m.inFlight.Inc()
		return func() { <-s.sem; s.m.inFlight.Dec() }, nil
	default:
		s.m.rejected.WithLabelValues(method).Inc()
		return nil, status.Errorf(codes.ResourceExhausted, "server busy: all %d admission slots are in use; retry with backoff", cap(s.sem))
	}
}

// decode validates the user context against the set's schema.
func (s *Server) decode(set *Set, uc *tandemv1.UserContext) (*query.User, error) {
	u, err := set.Cat.Schema.Decode(uc, time.Now().UnixMilli(), set.Cat)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	for _, f := range u.Defaulted {
		s.m.defaulted.WithLabelValues(f).Inc()
	}
	if u.UnknownItems > 0 {
		s.m.unknown.WithLabelValues("item").Add(float64(u.UnknownItems))
	}
	return u, nil
}

func deadline(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
		return status.Error(codes.Canceled, "canceled by the client")
	}
	return nil
}

type stageTimer struct {
	s      *Server
	method string
	debug  bool
	out    []*tandemv1.StageTiming
}

func (t *stageTimer) add(stage string, d time.Duration) {
	t.s.m.stage.WithLabelValues(t.method, stage).Observe(d.Seconds())
	if t.debug {
		t.out = append(t.out, &tandemv1.StageTiming{Stage: stage, Micros: float64(d.Nanoseconds()) / 1e3})
	}
}

// begin admits a Retrieve or Rank call, checks its deadline and returns
// the Set it is served from with its stage timer; release frees the slot.
func (s *Server) begin(ctx context.Context, method string, debug bool) (set *Set, tm *stageTimer, release func(), err error) {
	if release, err = s.admit(method); err != nil {
		return nil, nil, nil, err
	}
	if err := deadline(ctx); err != nil {
		release()
		return nil, nil, nil, err
	}
	return s.Live(), &stageTimer{s: s, method: method, debug: debug}, release, nil
}

// Retrieve implements the RPC.
func (s *Server) Retrieve(ctx context.Context, req *tandemv1.RetrieveRequest) (resp *tandemv1.RetrieveResponse, err error) {
	const method = "Retrieve"
	defer s.observe(method, time.Now(), &err)
	set, tm, release, err := s.begin(ctx, method, req.GetDebug())
	if err != nil {
		return nil, err
	}
	defer release()
	cfg := set.Cat.Cfg
	t0 := time.Now()
	if maxK := cfg.Caps.MaxRetrieveK; req.GetK() <= 0 || int(req.GetK()) > maxK {
		return nil, status.Errorf(codes.InvalidArgument, "k: %d is outside 1…%d", req.GetK(), maxK)
	}
	o := retrieve.Options{K: int(req.GetK()), Mode: s.o.Retrieval, Ef: s.o.Ef, Timings: &retrieve.Timings{}}
	if f := req.GetFilters(); f != nil {
		for i, p := range f.GetProducts() {
			k := slices.Index(cfg.Products, p)
			if k < 0 {
				return nil, status.Errorf(codes.InvalidArgument, "filters.products[%d]: unknown product %q (the schema has %v)", i, p, cfg.Products)
			}
			o.Products = append(o.Products, k)
		}
		mb := f.GetMinBid()
		if math.IsNaN(mb) || math.IsInf(mb, 0) {
			return nil, status.Errorf(codes.InvalidArgument, "filters.min_bid: %v is not finite", mb)
		}
		o.MinBid = float32(mb)
	}
	u, err := s.decode(set, req.GetUser())
	if err != nil {
		return nil, err
	}
	tm.add("decode", time.Since(t0))
	resp = &tandemv1.RetrieveResponse{Tasks: set.Cat.Tasks, Coverage: 1, SnapshotVersion: set.Snapshot(), DefaultedFeatures: u.Defaulted}
	if cl := s.o.Cluster; cl != nil {
		hits, st, err := cl.retrieve(ctx, set.Cat, u, o)
		if err != nil {
			return nil, err
		}
		tm.add("user_tower", st.userTower)
		tm.add("shards", st.search)
		resp.Coverage = st.coverage
		s.m.merged.Add(float64(st.merged))
		s.m.refetches.Add(float64(st.refetches))
		if st.coverage < 1 {
			s.m.partial.WithLabelValues(method).Inc()
		}
		resp.Ads = make([]*tandemv1.RetrievedAd, len(hits))
		for i, h := range hits {
			resp.Ads[i] = &tandemv1.RetrievedAd{AdId: h.id, Route: set.Cat.Routes[h.route].Name, Scores: h.scores, Utility: h.utility}
		}
	} else {
		hits, err := retrieve.Retrieve(set.Cat, u, o)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		tm.add("user_tower", o.Timings.UserTower)
		tm.add("search", o.Timings.Search)
		tm.add("score", o.Timings.Score)
		resp.Ads = make([]*tandemv1.RetrievedAd, len(hits))
		for i, h := range hits {
			resp.Ads[i] = &tandemv1.RetrievedAd{AdId: set.Cat.AdIDs[h.Row], Route: set.Cat.Routes[h.Route].Name, Scores: h.Scores, Utility: h.Utility}
		}
	}
	if err := deadline(ctx); err != nil {
		return nil, err
	}
	resp.Timings = tm.out
	return resp, nil
}

// Rank implements the RPC.
func (s *Server) Rank(ctx context.Context, req *tandemv1.RankRequest) (resp *tandemv1.RankResponse, err error) {
	const method = "Rank"
	defer s.observe(method, time.Now(), &err)
	set, tm, release, err := s.begin(ctx, method, req.GetDebug())
	if err != nil {
		return nil, err
	}
	defer release()
	cfg := set.Cat.Cfg
	t0 := time.Now()
	ids := req.GetAdIds()
	if len(ids) == 0 {
		return nil, status.Error(codes.InvalidArgument, "ad_ids: no candidates")
	}
	if maxN := cfg.Caps.MaxRankCandidates; len(ids) > maxN {
		return nil, status.Errorf(codes.InvalidArgument, "ad_ids: %d candidates, at most %d per call", len(ids), maxN)
	}
	seen := make(map[int64]int, len(ids))
	for i, id := range ids {
		if j, dup := seen[id]; dup {
			return nil, status.Errorf(codes.InvalidArgument, "ad_ids[%d]: ad %d repeats ad_ids[%d]", i, id, j)
		}
		seen[id] = i
	}
	u, err := s.decode(set, req.GetUser())
	if err != nil {
		return nil, err
	}
	tm.add("decode", time.Since(t0))
	cat, coverage := set.Cat, 1.0
	if cl := s.o.Cluster; cl != nil {
		t1 := time.Now()
		ads, cov, err := cl.fetchAds(ctx, set.Cat, ids)
		if err != nil {
			return nil, err
		}
		if cat, err = set.Cat.WithAds(ads); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		coverage = cov
		tm.add("shards", time.Since(t1))
	}
	pool := s.splitPool(len(ids))
	res, err := set.Models.Rank(cat, u, ids, pool)
	if pool != nil {
		s.pools <- pool
	}
	var noModel *ranker.ErrNoModel
	switch {
	case errors.Is(err, ranker.ErrNoneKnown):
		s.m.unknown.WithLabelValues("ad").Add(float64(len(ids)))
		return nil, status.Errorf(codes.InvalidArgument, "ad_ids: none of the %d candidates is in snapshot %s", len(ids), set.Snapshot())
	case errors.As(err, &noModel):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	tm.add("gather", res.Timings.Gather)
	tm.add("l2", res.Timings.Model)
	tm.add("sort", res.Timings.Sort)
	if len(res.Unknown) > 0 {
		s.m.unknown.WithLabelValues("ad").Add(float64(len(res.Unknown)))
	}
	if err := deadline(ctx); err != nil {
		return nil, err
	}
	if coverage < 1 {
		s.m.partial.WithLabelValues(method).Inc()
	}
	resp = &tandemv1.RankResponse{Coverage: coverage, ModelVersion: set.Model(), SnapshotVersion: set.Snapshot(),
		UnknownAdIds: res.Unknown, DefaultedFeatures: u.Defaulted}
	for _, t := range res.Tasks {
		resp.Tasks = append(resp.Tasks, cfg.Tasks[t])
	}
	resp.Ads = make([]*tandemv1.RankedAd, len(res.Ads))
	for i, a := range res.Ads {
		resp.Ads[i] = &tandemv1.RankedAd{AdId: cat.AdIDs[a.Row], Probabilities: a.Probs, Utility: a.Utility}
	}
	resp.Timings = tm.out
	return resp, nil
}

// observe records an admitted or refused call's latency and error code.
func (s *Server) observe(method string, t0 time.Time, err *error) {
	if *err != nil {
		s.m.errors.WithLabelValues(method, status.Code(*err).String()).Inc()
		if status.Code(*err) == codes.ResourceExhausted {
			return
		}
	}
	s.m.rpcSeconds.WithLabelValues(method).Observe(time.Since(t0).Seconds())
}
