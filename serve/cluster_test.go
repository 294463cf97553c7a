package serve

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shardv1 "github.com/tandemml/tandem/proto/tandem/shard/v1"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/shard"
)

// replica is one shard replica serving on loopback.
type replica struct {
	s    *ShardServer
	g    *grpc.Server
	addr string
	dead atomic.Bool
}

// kill stops the replica at once (in-flight calls fail), like a crash.
func (r *replica) kill() {
	if !r.dead.Swap(true) {
		r.g.Stop()
	}
}

// cluster is S shards × R replicas and the root's connections to them.
type cluster struct {
	reps [][]*replica
	cl   *Cluster
}

// startCluster serves every shard's replicas of dbdir on loopback, found
// through the in-process DNS server (startDNSCluster).
func startCluster(t *testing.T, dbdir string, shards, replicas int, partial bool) *cluster {
	t.Helper()
	d := startDNSCluster(t, dbdir, shards, replicas, partial)
	return &cluster{reps: d.reps, cl: d.cl}
}

// TestShardsHoldTheCatalog: the shards partition every version's ads by
// the shard map, and each shard's index holds exactly its ads.
func TestShardsHoldTheCatalog(t *testing.T) {
	full, err := NewShard(ShardOptions{DBDir: world.DB, Shard: 0, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	all := full.state.Load().cats["v1"]
	m, _ := shard.NewMap(4)
	seen := map[int64]int{}
	for s := range 4 {
		ss, err := NewShard(ShardOptions{DBDir: world.DB, Shard: s, Shards: 4, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		c := ss.state.Load().cats["v1"]
		for _, id := range c.AdIDs {
			if m.Shard(id) != s {
				t.Fatalf("ad %d on shard %d, the map says %d", id, s, m.Shard(id))
			}
			seen[id]++
		}
		for ri, r := range c.Routes {
			if r.Graph.Len() != len(r.Ads) {
				t.Fatalf("shard %d route %s: %d nodes for %d ads", s, r.Name, r.Graph.Len(), len(r.Ads))
			}
			want := 0
			for _, a := range all.Routes[ri].Ads {
				if m.Shard(all.AdIDs[a]) == s {
					want++
				}
			}
			if len(r.Ads) != want {
				t.Fatalf("shard %d route %s holds %d ads, the route has %d there", s, r.Name, len(r.Ads), want)
			}
		}
	}
	if len(seen) != len(all.AdIDs) {
		t.Fatalf("the shards hold %d of %d ads", len(seen), len(all.AdIDs))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("ad %d is on %d shards", id, n)
		}
	}
	if _, err := NewShard(ShardOptions{DBDir: world.DB, Shard: 4, Shards: 4}); err == nil {
		t.Fatal("shard 4 of 4 started")
	}
}

// TestRootMatchesAll: with exact per-shard search a root over 4 shards × 2
// replicas returns the ids, scores and utilities of --role=all, for every
// test request under several k and filters; Rank through the root equals
// Rank of the single process.
func TestRootMatchesAll(t *testing.T) {
	c := startCluster(t, world.DB, 4, 2, false)
	_, root, _, _ := start(t, Options{Cluster: c.cl, Retrieval: retrieve.Exact}, Listen{})
	_, single, _, _ := start(t, Options{Retrieval: retrieve.Exact}, Listen{})
	ctx := context.Background()
	n, step := 0, 1
	if raceEnabled {
		step = 4
	}
	for i := 0; i < len(reqs.Requests); i += step {
		for _, k := range []int{1, 10, 100} {
			req := retrieveReq(t, i, k)
			if i%3 == 1 {
				req.Filters = &tandemv1.Filters{Products: []string{"standard"}, MinBid: 0.5}
			}
			want, err := single.Retrieve(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := root.Retrieve(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Ads) != len(want.Ads) || got.Coverage != 1 || got.SnapshotVersion != want.SnapshotVersion {
				t.Fatalf("request %d k %d: %d ads, coverage %v, snapshot %s; single: %d ads, %s", i, k, len(got.Ads), got.Coverage, got.SnapshotVersion, len(want.Ads), want.SnapshotVersion)
			}
			for j := range got.Ads {
				g, w := got.Ads[j], want.Ads[j]
				if g.AdId != w.AdId || g.Route != w.Route || g.Utility != w.Utility || !slices.Equal(g.Scores, w.Scores) {
					t.Fatalf("request %d k %d position %d: root %v, single %v", i, k, j, g, w)
				}
			}
			n++
		}
	}
	for i := range 10 {
		req := rankReq(t, i)
		req.AdIds = append(req.AdIds, -7)
		want, err := single.Rank(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := root.Rank(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Ads) != len(want.Ads) || !slices.Equal(got.UnknownAdIds, want.UnknownAdIds) || got.Coverage != 1 {
			t.Fatalf("rank %d: %d ads unknown %v; single %d unknown %v", i, len(got.Ads), got.UnknownAdIds, len(want.Ads), want.UnknownAdIds)
		}
		for j := range got.Ads {
			if got.Ads[j].AdId != want.Ads[j].AdId || got.Ads[j].Utility != want.Ads[j].Utility || !slices.Equal(got.Ads[j].Probabilities, want.Ads[j].Probabilities) {
				t.Fatalf("rank %d position %d: root %v, single %v", i, j, got.Ads[j], want.Ads[j])
			}
		}
	}
	t.Logf("%d Retrieve calls identical to the single process", n)
}

// TestRootHNSWRecall: with HNSW on every shard the root's recall of the
// exact answer is at least the single process's − 0.005.
func TestRootHNSWRecall(t *testing.T) {
	c := startCluster(t, world.DB, 4, 1, false)
	_, root, _, _ := start(t, Options{Cluster: c.cl}, Listen{})
	_, single, _, _ := start(t, Options{}, Listen{})
	_, exact, _, _ := start(t, Options{Retrieval: retrieve.Exact}, Listen{})
	ctx := context.Background()
	var hitR, hitS, total int
	step := 1
	if raceEnabled {
		step = 2
	}
	for i := 0; i < len(reqs.Requests); i += step {
		req := retrieveReq(t, i, 50)
		e, err := exact.Retrieve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]bool{}
		for _, a := range e.Ads {
			want[a.AdId] = true
		}
		total += len(e.Ads)
		for cl, hit := range map[tandemv1.TandemClient]*int{root: &hitR, single: &hitS} {
			got, err := cl.Retrieve(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range got.Ads {
				if want[a.AdId] {
					*hit++
				}
			}
		}
	}
	rr, rs := float64(hitR)/float64(total), float64(hitS)/float64(total)
	t.Logf("recall@50 of the exact answer: root over 4 shards %.4f, single process %.4f", rr, rs)
	if rr < rs-0.005 {
		t.Fatalf("distributed recall %.4f is below the single process's %.4f − 0.005", rr, rs)
	}
}

// TestRootSurvivesReplicaLoss: killing one replica of every shard under
// load fails no request; killing both of one shard's replicas gives
// UNAVAILABLE within the deadline, or coverage 0.75 with AllowPartial.
func TestRootSurvivesReplicaLoss(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) {
			c := startCluster(t, world.DB, 4, 2, partial)
			_, root, _, _ := start(t, Options{Cluster: c.cl}, Listen{})
			ctx := context.Background()
			var failed, calls atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; ; i += 3 {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := root.Retrieve(ctx, retrieveReq(t, i, 10)); err != nil {
							failed.Add(1)
							t.Logf("call %d: %v", i, err)
						}
						calls.Add(1)
					}
				}()
			}
			for calls.Load() < 30 {
				time.Sleep(time.Millisecond)
			}
			for s := range c.reps {
				c.reps[s][0].kill()
			}
			at := calls.Load()
			for calls.Load() < at+60 {
				time.Sleep(time.Millisecond)
			}
			close(stop)
			wg.Wait()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d calls failed with one replica of every shard killed", n, calls.Load())
			}
			c.reps[2][1].kill()
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			t0 := time.Now()
			resp, err := root.Retrieve(dctx, retrieveReq(t, 0, 10))
			took := time.Since(t0)
			if partial {
				if err != nil || resp.Coverage != 0.75 || len(resp.Ads) == 0 {
					t.Fatalf("partial with shard 2 down: %v, coverage %v", err, resp.GetCoverage())
				}
				rr, err := root.Rank(dctx, rankReq(t, 0))
				if err != nil || rr.Coverage > 1 || rr.Coverage <= 0 {
					t.Fatalf("partial rank with shard 2 down: %v, coverage %v", err, rr.GetCoverage())
				}
				return
			}
			if status.Code(err) != codes.Unavailable || took > 2*time.Second {
				t.Fatalf("shard 2 down: %v after %v, want UNAVAILABLE within the deadline", err, took)
			}
			t.Logf("shard 2 down: %v after %v", err, took)
		})
	}
}

// TestVersionsAcrossShards: Stage(v2) on every replica, Activate(v2), the
// root's reload to v2 and Drop(v1), all under load: no call fails and
// every answer comes whole from one version.
func TestVersionsAcrossShards(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	if out, err := exec.Command("cp", "-r", world.DB, db).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	if _, err := refresh.Run(context.Background(), refresh.Options{Data: world.Data, ModelDir: world.Models, DBDir: db, Version: "v2", Threads: 2, CheckQueries: 20, Seed: 2, M: 8}); err != nil {
		t.Fatal(err)
	}
	// The replicas start on CURRENT (v2): point them at v1 first.
	if err := os.WriteFile(filepath.Join(db, "CURRENT"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, db, 2, 2, false)
	_, root, _, _ := start(t, Options{Cluster: c.cl, ModelDir: world.Models, DBDir: db}, Listen{})
	ctx := context.Background()
	ld := startLoad(t, root)
	ld.wait(20)
	for _, rs := range c.reps {
		for _, r := range rs {
			if _, err := r.s.Stage(ctx, &shardv1.VersionRequest{Version: "v2"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, rs := range c.reps {
		for _, r := range rs {
			if _, err := r.s.Activate(ctx, &shardv1.VersionRequest{Version: "v2"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := root.Reload(ctx, &tandemv1.ReloadRequest{SnapshotVersion: "v2"}); err != nil {
		t.Fatal(err)
	}
	ld.wait(20)
	for _, rs := range c.reps {
		for _, r := range rs {
			if _, err := r.s.Drop(ctx, &shardv1.VersionRequest{Version: "v1"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ld.wait(20)
	ld.finish()
	if n := ld.failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed across the version change", n, ld.calls.Load())
	}
	v1, v2 := ld.saw("v1"), ld.saw("v2")
	if !v1 || !v2 {
		t.Fatalf("answers from v1 %v, v2 %v: the change was not under load", v1, v2)
	}
	// v1 is gone everywhere: a call pinned to it is refused by every replica.
	_, err := c.reps[0][0].s.Search(ctx, &shardv1.SearchRequest{Version: "v1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("search of a dropped version: %v", err)
	}
	if _, err := c.reps[0][0].s.Drop(ctx, &shardv1.VersionRequest{Version: "v2"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("dropping the active version: %v", err)
	}
	info, _ := c.reps[1][1].s.Info(ctx, &shardv1.InfoRequest{})
	if info.Active != "v2" || !slices.Equal(info.Staged, []string{"v2"}) || info.Shard != 1 || info.Shards != 2 || info.Ads == 0 {
		t.Fatalf("info %v", info)
	}
}
