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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	shardv1 "github.com/tandemml/tandem/proto/tandem/shard/v1"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/snapshot"
)

// MaxShardLimit bounds the hits one shard Search returns and the ads one
// GetAds asks for.
const MaxShardLimit = 10_000

// ShardOptions configure a shard replica (serve --role=shard).
type ShardOptions struct {
	// DBDir holds the snapshot versions; the replica starts with
	// DBDIR/CURRENT staged and active, and DBDIR/PREVIOUS (when it is
	// still on disk) staged.
	DBDir string
	// Shard of Shards is the slice of every version's ads this replica
	// holds (package shard's map).
	Shard, Shards int
	// Engine are the user towers' load options (a shard runs none, but
	// the catalog checks them).
	Engine engine.Options
	// Threads builds a shard index a version does not store (default: all
	// cores).
	Threads int
	// MaxInFlight bounds the Search and GetAds calls served at once
	// (default 4 × GOMAXPROCS); beyond it calls fail with
	// ResourceExhausted.
	MaxInFlight int
	Log         *slog.Logger
}

// ShardServer implements tandem.shard.v1.Shard: one replica of one shard.
type ShardServer struct {
	shardv1.UnimplementedShardServer
	o      ShardOptions
	state  atomic.Pointer[shardState]
	stage  sync.Mutex // one Stage, Activate or Drop at a time
	sem    chan struct{}
	Health *health.Server
	log    *slog.Logger
	served atomic.Int64 // Search calls answered
}

// shardState is the replica's versions; it is replaced, never changed.
type shardState struct {
	active string
	cats   map[string]*catalog.Catalog
}

// NewShard loads the live version's shard and returns a replica ready to
// register.
func NewShard(o ShardOptions) (*ShardServer, error) {
	if o.DBDir == "" {
		return nil, errors.New("serve: the snapshot directory is required")
	}
	if o.Shards < 1 || o.Shard < 0 || o.Shard >= o.Shards {
		return nil, fmt.Errorf("serve: shard %d of %d: want 0 ≤ shard < shards", o.Shard, o.Shards)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4 * runtime.GOMAXPROCS(0)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &ShardServer{o: o, sem: make(chan struct{}, o.MaxInFlight), Health: health.NewServer(), log: o.Log}
	v, err := snapshot.Current(o.DBDir)
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, fmt.Errorf("serve: %s has no live snapshot (run tandem refresh)", o.DBDir)
	}
	c, err := s.loadVersion(v)
	if err != nil {
		return nil, err
	}
	cats := map[string]*catalog.Catalog{v: c}
	// The version CURRENT replaced is staged too: it is what every
	// replica holds in steady state (the rollback target), and what the
	// roots still pin after a publish and before its rollout, so a
	// replica restarted in that window can answer them.
	if prev, err := snapshot.Previous(o.DBDir); err != nil {
		s.log.Warn("cannot read the previous snapshot's name; staging only the live one", "err", err)
	} else if prev != "" {
		if pc, err := s.loadVersion(prev); err != nil {
			s.log.Warn("cannot stage the previous snapshot; staging only the live one", "snapshot", prev, "err", err)
		} else {
			cats[prev] = pc
		}
	}
	s.state.Store(&shardState{active: v, cats: cats})
	s.setServing(true)
	s.log.Info("serving shard", "shard", o.Shard, "shards", o.Shards, "snapshot", v, "ads", len(c.AdIDs))
	return s, nil
}

func (s *ShardServer) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.Health.SetServingStatus("", st)
	s.Health.SetServingStatus(shardv1.Shard_ServiceDesc.ServiceName, st)
}

func (s *ShardServer) loadVersion(v string) (*catalog.Catalog, error) {
	t0 := time.Now()
	c, err := catalog.LoadPart(s.o.DBDir, v, s.o.Engine, catalog.Part{Shards: s.o.Shards, Shard: s.o.Shard, Threads: s.o.Threads})
	if err != nil {
		return nil, err
	}
	s.log.Info("staged", "snapshot", v, "ads", len(c.AdIDs), "seconds", time.Since(t0).Seconds())
	return c, nil
}

// Active names the version requests that name none are served from.
func (s *ShardServer) Active() string { return s.state.Load().active }

// catalogFor returns version v's catalog (the active one for "").
func (s *ShardServer) catalogFor(v string) (*catalog.Catalog, error) {
	st := s.state.Load()
	if v == "" {
		v = st.active
	}
	c, ok := st.cats[v]
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "version: shard %d has not staged snapshot %q (staged: %v)", s.o.Shard, v, staged(st))
	}
	return c, nil
}

func staged(st *shardState) []string {
	var vs []string
	for v := range st.cats {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func (s *ShardServer) admit() (func(), error) {
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	default:
		return nil, status.Errorf(codes.ResourceExhausted, "shard %d busy: all %d slots are in use", s.o.Shard, cap(s.sem))
	}
}

// Search implements the RPC.
func (s *ShardServer) Search(ctx context.Context, req *shardv1.SearchRequest) (*shardv1.SearchResponse, error) {
	release, err := s.admit()
	if err != nil {
		return nil, err
	}
	defer release()
	s.served.Add(1)
	c, err := s.catalogFor(req.GetVersion())
	if err != nil {
		return nil, err
	}
	ri := slices.IndexFunc(c.Routes, func(r *catalog.Route) bool { return r.Name == req.GetRoute() })
	if ri < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "route: %q is not a route of snapshot %s", req.GetRoute(), c.Version)
	}
	nt, od := len(c.Tasks), c.OutDim
	uv := req.GetUser()
	if len(uv) != nt*od {
		return nil, status.Errorf(codes.InvalidArgument, "user: %d values, want %d tasks × %d", len(uv), nt, od)
	}
	for i, v := range uv {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, status.Errorf(codes.InvalidArgument, "user[%d]: %v is not finite", i, v)
		}
	}
	if l := req.GetLimit(); l < 1 || l > MaxShardLimit {
		return nil, status.Errorf(codes.InvalidArgument, "limit: %d is outside 1…%d", l, MaxShardLimit)
	}
	if sf := req.GetSurface(); sf < 0 || int(sf) >= len(c.Cfg.Surfaces) || sf >= 8 {
		return nil, status.Errorf(codes.InvalidArgument, "surface: %d is outside 0…%d", sf, len(c.Cfg.Surfaces)-1)
	}
	admit := make([]bool, len(c.Cfg.Products))
	if len(req.GetProducts()) == 0 {
		for i := range admit {
			admit[i] = true
		}
	}
	for i, p := range req.GetProducts() {
		if p < 0 || int(p) >= len(admit) {
			return nil, status.Errorf(codes.InvalidArgument, "products[%d]: %d is outside 0…%d", i, p, len(admit)-1)
		}
		admit[p] = true
	}
	mb := req.GetMinBid()
	if math.IsNaN(float64(mb)) || math.IsInf(float64(mb), 0) {
		return nil, status.Errorf(codes.InvalidArgument, "min_bid: %v is not finite", mb)
	}
	if err := deadline(ctx); err != nil {
		return nil, err
	}
	o := retrieve.Options{K: int(req.GetLimit()), KPrime: int(req.GetLimit()), Ef: int(req.GetEf()), MinBid: mb}
	if req.GetExact() {
		o.Mode = retrieve.Exact
	}
	cands, err := retrieve.SearchRoute(c, ri, uv, int(req.GetSurface()), admit, o)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &shardv1.SearchResponse{Version: c.Version, Candidates: make([]*shardv1.Candidate, len(cands))}
	for i, h := range cands {
		resp.Candidates[i] = &shardv1.Candidate{AdId: c.AdIDs[h.Row], Score: h.Score, Utility: h.Utility, Scores: h.Scores}
	}
	return resp, nil
}

// GetAds implements the RPC.
func (s *ShardServer) GetAds(ctx context.Context, req *shardv1.GetAdsRequest) (*shardv1.GetAdsResponse, error) {
	release, err := s.admit()
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := s.catalogFor(req.GetVersion())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetAdIds()); n > MaxShardLimit {
		return nil, status.Errorf(codes.InvalidArgument, "ad_ids: %d ids, at most %d per call", n, MaxShardLimit)
	}
	nac, nad := len(c.Schema.Feat.AdCat), len(c.Schema.Feat.AdDense)
	nv := len(c.Routes) * len(c.Tasks) * c.OutDim
	resp := &shardv1.GetAdsResponse{Version: c.Version}
	for _, id := range req.GetAdIds() {
		a, ok := c.AdRow(id)
		if !ok {
			resp.Unknown = append(resp.Unknown, id)
			continue
		}
		i := int(a)
		resp.Ads = append(resp.Ads, &shardv1.Ad{AdId: id, ItemId: c.ItemIDs[c.AdItem[a]], Product: uint32(c.Product[a]),
			Eligible: uint32(c.Eligible[a]), Active: c.Active[a], Bid: c.Bid[a],
			Cats: c.AdCats[i*nac : (i+1)*nac], Dense: c.AdDense[i*nad : (i+1)*nad], Vectors: c.Vectors[i*nv : (i+1)*nv]})
	}
	return resp, nil
}

// Info implements the RPC.
func (s *ShardServer) Info(context.Context, *shardv1.InfoRequest) (*shardv1.ShardInfo, error) {
	return s.info(), nil
}

func (s *ShardServer) info() *shardv1.ShardInfo {
	st := s.state.Load()
	return &shardv1.ShardInfo{Shard: int32(s.o.Shard), Shards: int32(s.o.Shards), Active: st.active, Staged: staged(st),
		Ads: int64(len(st.cats[st.active].AdIDs))}
}

// Stage implements the RPC: it loads the version next to the others. The
// replica reports NOT_SERVING while it loads, so balancers send its
// traffic to the shard's other replicas.
func (s *ShardServer) Stage(ctx context.Context, req *shardv1.VersionRequest) (*shardv1.ShardInfo, error) {
	v := req.GetVersion()
	if v == "" {
		return nil, status.Error(codes.InvalidArgument, "version: empty")
	}
	s.stage.Lock()
	defer s.stage.Unlock()
	if _, ok := s.state.Load().cats[v]; ok {
		return s.info(), nil
	}
	s.setServing(false)
	c, err := s.loadVersion(v)
	s.setServing(true)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "stage %s: %v", v, err)
	}
	st := s.state.Load()
	cats := maps(st.cats)
	cats[v] = c
	s.state.Store(&shardState{active: st.active, cats: cats})
	return s.info(), nil
}

// Activate implements the RPC.
func (s *ShardServer) Activate(ctx context.Context, req *shardv1.VersionRequest) (*shardv1.ShardInfo, error) {
	v := req.GetVersion()
	s.stage.Lock()
	defer s.stage.Unlock()
	st := s.state.Load()
	if _, ok := st.cats[v]; !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "version: %q is not staged (staged: %v)", v, staged(st))
	}
	s.state.Store(&shardState{active: v, cats: st.cats})
	s.log.Info("activated", "snapshot", v)
	return s.info(), nil
}

// Drop implements the RPC; the active version cannot be dropped.
func (s *ShardServer) Drop(ctx context.Context, req *shardv1.VersionRequest) (*shardv1.ShardInfo, error) {
	v := req.GetVersion()
	s.stage.Lock()
	defer s.stage.Unlock()
	st := s.state.Load()
	if v == st.active {
		return nil, status.Errorf(codes.FailedPrecondition, "version: %q is active; activate another first", v)
	}
	if _, ok := st.cats[v]; !ok {
		return s.info(), nil
	}
	cats := maps(st.cats)
	delete(cats, v)
	s.state.Store(&shardState{active: st.active, cats: cats})
	s.log.Info("dropped", "snapshot", v)
	return s.info(), nil
}

func maps(m map[string]*catalog.Catalog) map[string]*catalog.Catalog {
	n := make(map[string]*catalog.Catalog, len(m)+1)
	for k, v := range m {
		n[k] = v
	}
	return n
}

// GRPCServer returns a grpc.Server with the shard, health and reflection
// registered.
func (s *ShardServer) GRPCServer(l Listen) (*grpc.Server, error) {
	opts, err := serverOptions(l)
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer(opts...)
	shardv1.RegisterShardServer(g, s)
	healthpb.RegisterHealthServer(g, s.Health)
	reflection.Register(g)
	return g, nil
}

// Run serves the replica until ctx ends, then drains as Server.Run does.
func (s *ShardServer) Run(ctx context.Context, l Listen) error {
	g, err := s.GRPCServer(l)
	if err != nil {
		return err
	}
	return runGRPC(ctx, l, g, s.log, nil, s.Health.Shutdown, func() {})
}

// serverOptions are the options every tandem gRPC server shares.
func serverOptions(l Listen) ([]grpc.ServerOption, error) {
	if l.MaxRecvBytes <= 0 {
		l.MaxRecvBytes = 4 << 20
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvBytes),
		// Clients re-resolve and rebalance now and then.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 10 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second}),
	}
	if l.CertFile != "" || l.KeyFile != "" {
		creds, err := tlsCreds(l)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(creds))
	}
	return opts, nil
}
