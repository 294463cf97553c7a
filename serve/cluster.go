package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	"google.golang.org/grpc/status"

	"github.com/tandemml/tandem/catalog"
	shardv1 "github.com/tandemml/tandem/proto/tandem/shard/v1"
	"github.com/tandemml/tandem/query"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/shard"
	"github.com/tandemml/tandem/snapshot"
)

// shardServiceConfig is every shard connection's gRPC service config:
// round-robin over the shard's replicas (the addresses its target
// resolves to, e.g. a Kubernetes headless Service), client-side health
// checking (a replica that is staging or draining reports NOT_SERVING
// and gets no calls), and retries on another replica when one is gone or
// has not staged the pinned version.
const shardServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": "tandem.shard.v1.Shard"},
  "methodConfig": [{
    "name": [{"service": "tandem.shard.v1.Shard"}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.002s",
      "maxBackoff": "0.05s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE", "FAILED_PRECONDITION"]
    }
  }]
}`

// ClusterOptions configure a root's shard connections.
type ClusterOptions struct {
	// Targets holds one gRPC target per shard, in shard order (e.g.
	// "dns:///tandem-shard-0.tandem-shard:7001").
	Targets []string
	// AllowPartial answers with the shards that respond (and the coverage
	// field below 1) instead of failing when a shard is unavailable.
	AllowPartial bool
	// KPrime is the per-shard limit (0: shard.KPrime with its default).
	KPrime int
	// Dial are extra dial options, applied after the defaults (insecure
	// transport; ShardTLS replaces it).
	Dial []grpc.DialOption
}

// Cluster is a root's view of the shards: one client connection per
// shard, balanced over its replicas.
type Cluster struct {
	o       ClusterOptions
	m       shard.Map
	conns   []*grpc.ClientConn
	clients []shardv1.ShardClient
}

// DialCluster connects to every shard; connections are lazy, so a shard
// that is not up yet fails the calls that need it, not the dial.
func DialCluster(o ClusterOptions) (*Cluster, error) {
	m, err := shard.NewMap(len(o.Targets))
	if err != nil {
		return nil, fmt.Errorf("serve: shard targets: %w", err)
	}
	cl := &Cluster{o: o, m: m}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(shardServiceConfig)}, o.Dial...)
	for i, t := range o.Targets {
		cc, err := grpc.NewClient(t, opts...)
		if err != nil {
			cl.Close()
			return nil, fmt.Errorf("serve: shard %d target %q: %w", i, t, err)
		}
		cl.conns = append(cl.conns, cc)
		cl.clients = append(cl.clients, shardv1.NewShardClient(cc))
	}
	return cl, nil
}

// Shards is the shard count.
func (cl *Cluster) Shards() int { return len(cl.clients) }

// Client returns shard s's client (all of its replicas).
func (cl *Cluster) Client(s int) shardv1.ShardClient { return cl.clients[s] }

// Close closes the connections.
func (cl *Cluster) Close() {
	for _, cc := range cl.conns {
		cc.Close()
	}
	cl.conns, cl.clients = nil, nil
}

// clusterHit is one retrieved ad of a sharded Retrieve.
type clusterHit struct {
	id      int64
	route   int
	utility float64
	scores  []float32
}

// clusterStats is what a sharded call measured.
type clusterStats struct {
	userTower, search time.Duration
	coverage          float64
	refetches, merged int
}

// retrieve is Retrieve over the shards: the user towers here, each
// route's top K′ by inner product gathered exactly from every shard
// (package shard), then the same final order as the single process
// (utility, then ad id; an ad two routes returned keeps its best entry).
// Every shard call names the Set's snapshot version, so an answer never
// mixes two versions.
func (cl *Cluster) retrieve(ctx context.Context, c *catalog.Catalog, u *query.User, o retrieve.Options) ([]clusterHit, clusterStats, error) {
	st := clusterStats{coverage: 1}
	kp, ef := o.Limits()
	routes, admits := retrieve.Routes(c, u.Surface, o.Products)
	nt, od := len(c.Tasks), c.OutDim
	var all []clusterHit
	for i, ri := range routes {
		r := c.Routes[ri]
		t0 := time.Now()
		uv := make([]float32, nt*od)
		if err := retrieve.UserVectors(c, ri, u, nil, uv); err != nil {
			return nil, st, status.Error(codes.Internal, err.Error())
		}
		t1 := time.Now()
		var products []int32
		for p, ok := range admits[i] {
			if ok {
				products = append(products, int32(p))
			}
		}
		var mu sync.Mutex
		got := map[int64]*shardv1.Candidate{}
		search := shard.SearcherFunc(func(ctx context.Context, s, limit int) ([]shard.Hit, error) {
			resp, err := cl.clients[s].Search(ctx, &shardv1.SearchRequest{Version: c.Version, Route: r.Name, User: uv,
				Limit: int32(limit), Surface: int32(u.Surface), Products: products, MinBid: o.MinBid, Exact: o.Mode == retrieve.Exact, Ef: int32(ef)})
			if err != nil {
				return nil, err
			}
			if resp.GetVersion() != c.Version {
				return nil, fmt.Errorf("answered from snapshot %s, not %s", resp.GetVersion(), c.Version)
			}
			hits := make([]shard.Hit, len(resp.GetCandidates()))
			mu.Lock()
			for j, cd := range resp.GetCandidates() {
				if len(cd.GetScores()) != nt {
					mu.Unlock()
					return nil, fmt.Errorf("ad %d: %d scores for %d tasks", cd.GetAdId(), len(cd.GetScores()), nt)
				}
				if owner := cl.m.Shard(cd.GetAdId()); owner != s {
					mu.Unlock()
					return nil, fmt.Errorf("ad %d belongs to shard %d", cd.GetAdId(), owner)
				}
				hits[j] = shard.Hit{ID: cd.GetAdId(), Score: cd.GetScore()}
				got[cd.GetAdId()] = cd
			}
			mu.Unlock()
			return hits, nil
		})
		res, err := shard.Gather(ctx, search, cl.Shards(), kp, cl.o.KPrime, shard.Options{AllowPartial: cl.o.AllowPartial})
		if err != nil {
			return nil, st, shardStatus(ctx, "route "+r.Name, err)
		}
		st.coverage = min(st.coverage, res.Coverage)
		st.refetches += res.Refetches
		st.merged += res.Merged
		for _, h := range res.Hits {
			cd := got[h.ID]
			all = append(all, clusterHit{id: h.ID, route: ri, utility: cd.GetUtility(), scores: cd.GetScores()})
		}
		st.userTower += t1.Sub(t0)
		st.search += time.Since(t1)
	}
	slices.SortFunc(all, func(a, b clusterHit) int {
		if c := cmp.Compare(b.utility, a.utility); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]clusterHit, 0, o.K)
	seen := map[int64]bool{}
	for _, h := range all {
		if len(out) == o.K {
			break
		}
		if seen[h.id] {
			continue
		}
		seen[h.id] = true
		out = append(out, h)
	}
	return out, st, nil
}

// shardStatus turns a failed gather into the call's status: a done
// context is its deadline or cancellation, a shard with no replica that
// answers is UNAVAILABLE naming the shard.
func shardStatus(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	var se *shard.ShardError
	if errors.As(err, &se) {
		code := status.Code(se.Err)
		switch code {
		case codes.DeadlineExceeded, codes.Canceled, codes.InvalidArgument, codes.ResourceExhausted:
		default:
			code = codes.Unavailable
		}
		return status.Errorf(code, "%s: shard %d: %v", what, se.Shard, status.Convert(se.Err).Message())
	}
	return status.Errorf(codes.Unavailable, "%s: %v", what, err)
}

// fetchAds reads the rows of ids from their owner shards, one batched
// GetAds per shard, all at the version of c. Ads a shard does not hold
// are left out (the ranker reports them unknown); with AllowPartial so
// are the ads of shards that fail, and coverage says how many shards
// answered.
func (cl *Cluster) fetchAds(ctx context.Context, c *catalog.Catalog, ids []int64) ([]*snapshot.Ad, float64, error) {
	per := make([][]int64, cl.Shards())
	for _, id := range ids {
		s := cl.m.Shard(id)
		per[s] = append(per[s], id)
	}
	type answer struct {
		ads []*snapshot.Ad
		err error
	}
	answers := make([]answer, cl.Shards())
	var wg sync.WaitGroup
	for s, want := range per {
		if len(want) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.clients[s].GetAds(ctx, &shardv1.GetAdsRequest{Version: c.Version, AdIds: want})
			if err == nil && resp.GetVersion() != c.Version {
				err = fmt.Errorf("answered from snapshot %s, not %s", resp.GetVersion(), c.Version)
			}
			if err != nil {
				answers[s].err = &shard.ShardError{Shard: s, Err: err}
				return
			}
			for _, a := range resp.GetAds() {
				if cl.m.Shard(a.GetAdId()) != s {
					answers[s].err = &shard.ShardError{Shard: s, Err: fmt.Errorf("ad %d belongs to shard %d", a.GetAdId(), cl.m.Shard(a.GetAdId()))}
					return
				}
				answers[s].ads = append(answers[s].ads, &snapshot.Ad{ID: a.GetAdId(), ItemID: a.GetItemId(), Product: uint8(a.GetProduct()),
					Eligible: uint8(a.GetEligible()), Active: a.GetActive(), Bid: a.GetBid(), Cats: a.GetCats(), Dense: a.GetDense(), Vectors: a.GetVectors()})
			}
		}()
	}
	wg.Wait()
	var ads []*snapshot.Ad
	asked, answered := 0, 0
	for s, a := range answers {
		if len(per[s]) == 0 {
			continue
		}
		asked++
		if a.err != nil {
			if !cl.o.AllowPartial {
				return nil, 0, shardStatus(ctx, "ads", a.err)
			}
			continue
		}
		answered++
		ads = append(ads, a.ads...)
	}
	cov := 1.0
	if asked > 0 {
		cov = float64(answered) / float64(asked)
	}
	return ads, cov, nil
}

// ActiveVersion asks every shard (one replica each) which snapshot
// version is active. It returns the version when all agree and "" when
// they do not yet (a rollout is activating replica by replica). A root
// follows it: the rollout stages a version on every replica before it
// activates any, so once some replica reports V active, every replica
// holds V and a root that pins V cannot hit one that lacks it.
func (cl *Cluster) ActiveVersion(ctx context.Context) (string, error) {
	got := make([]string, cl.Shards())
	errs := make([]error, cl.Shards())
	var wg sync.WaitGroup
	for s := range cl.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := cl.clients[s].Info(ctx, &shardv1.InfoRequest{})
			if err != nil {
				errs[s] = fmt.Errorf("shard %d: %v", s, status.Convert(err).Message())
				return
			}
			if int(in.GetShards()) != cl.Shards() || int(in.GetShard()) != s {
				errs[s] = fmt.Errorf("shard target %d answers as shard %d of %d", s, in.GetShard(), in.GetShards())
				return
			}
			got[s] = in.GetActive()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	for _, v := range got[1:] {
		if v != got[0] {
			return "", nil
		}
	}
	return got[0], nil
}

// ShardTLS is the dial option for shards that serve TLS (serve --role
// shard with -tls-cert): their certificates are verified against the
// PEM certificates in caFile, under the host name of each target.
func ShardTLS(caFile string) (grpc.DialOption, error) {
	creds, err := credentials.NewClientTLSFromFile(caFile, "")
	if err != nil {
		return nil, fmt.Errorf("serve: shard CA %s: %w", caFile, err)
	}
	return grpc.WithTransportCredentials(creds), nil
}
