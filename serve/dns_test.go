package serve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandemml/tandem/internal/dnstest"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/rollout"
)

// dnsCluster is S shards × R replicas found the way a root finds them in
// Kubernetes: one name per shard (a headless Service) resolving to every
// replica's address, served by an in-process DNS server. Replica r of
// shard s listens on 127.0.<s+1>.<r+10>, every replica of a shard on the
// same port, as pods behind one Service do.
type dnsCluster struct {
	dns     *dnstest.Server
	reps    [][]*replica
	targets []string
	ports   []int
	cl      *Cluster
}

func (c *dnsCluster) name(s int) string { return fmt.Sprintf("tandem-shard-%d.tandem.test", s) }

// publish points shard s's name at its live replicas, plus extra
// addresses.
func (c *dnsCluster) publish(s int, extra ...string) {
	var ips []string
	for _, r := range c.reps[s] {
		if !r.dead.Load() {
			host, _, _ := net.SplitHostPort(r.addr)
			ips = append(ips, host)
		}
	}
	c.dns.Set(c.name(s), append(ips, extra...)...)
}

func startDNSCluster(t *testing.T, dbdir string, shards, replicas int, partial bool) *dnsCluster {
	t.Helper()
	d, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	c := &dnsCluster{dns: d, reps: make([][]*replica, shards)}
	for s := range shards {
		port := 0
		for r := range replicas {
			ss, err := NewShard(ShardOptions{DBDir: dbdir, Shard: s, Shards: shards, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			g, err := ss.GRPCServer(Listen{})
			if err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.%d:%d", s+1, r+10, port))
			if err != nil {
				t.Fatal(err)
			}
			port = lis.Addr().(*net.TCPAddr).Port
			rep := &replica{s: ss, g: g, addr: lis.Addr().String()}
			go g.Serve(lis)
			t.Cleanup(rep.kill)
			c.reps[s] = append(c.reps[s], rep)
		}
		c.ports = append(c.ports, port)
		c.publish(s)
		c.targets = append(c.targets, fmt.Sprintf("dns://%s/%s:%d", d.Addr(), c.name(s), port))
	}
	cl, err := DialCluster(ClusterOptions{Targets: c.targets, AllowPartial: partial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.cl = cl
	return c
}

// randomRetrieve is test request i with a random k and random filters.
func randomRetrieve(t *testing.T, rng *rand.Rand, i int) *tandemv1.RetrieveRequest {
	req := retrieveReq(t, i, 1+rng.IntN(200))
	switch rng.IntN(4) {
	case 1:
		req.Filters = &tandemv1.Filters{Products: []string{"standard"}}
	case 2:
		req.Filters = &tandemv1.Filters{MinBid: rng.Float64()}
	case 3:
		req.Filters = &tandemv1.Filters{Products: []string{"standard", "shopping"}, MinBid: rng.Float64() / 2}
	}
	return req
}

// load is Retrieve calls sent to a root by two goroutines until finish,
// counting calls, failures and the snapshot versions answers came from.
type load struct {
	calls, failed atomic.Int64
	versions      sync.Map
	stop          chan struct{}
	wg            sync.WaitGroup
}

func startLoad(t *testing.T, root tandemv1.TandemClient) *load {
	l := &load{stop: make(chan struct{})}
	for w := range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ; i += 2 {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := root.Retrieve(context.Background(), retrieveReq(t, i, 10))
				l.calls.Add(1)
				if err != nil {
					l.failed.Add(1)
					t.Logf("call %d: %v", i, err)
					continue
				}
				l.versions.Store(resp.SnapshotVersion, true)
			}
		}()
	}
	return l
}

// wait returns once n more calls have ended.
func (l *load) wait(n int64) {
	at := l.calls.Load()
	for l.calls.Load() < at+n {
		time.Sleep(time.Millisecond)
	}
}

// finish stops the callers and waits for them.
func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// saw reports whether some answer came from version v.
func (l *load) saw(v string) bool {
	_, ok := l.versions.Load(v)
	return ok
}

// TestRootOverDNS: a root that finds 4 shards × 2 replicas through DNS
// (grpc's dns resolver, round_robin over the addresses a shard's name
// resolves to) answers 1,000 random queries with exact per-shard search
// exactly as --role=all does, and every replica takes calls.
func TestRootOverDNS(t *testing.T) {
	c := startDNSCluster(t, world.DB, 4, 2, false)
	rs, root, _, _ := start(t, Options{Cluster: c.cl, Retrieval: retrieve.Exact}, Listen{})
	_, single, _, _ := start(t, Options{Retrieval: retrieve.Exact}, Listen{})
	ctx := context.Background()
	n := 1000
	if raceEnabled {
		n = 200
	}
	rng := rand.New(rand.NewPCG(7, 8))
	returned := 0
	for i := range n {
		req := randomRetrieve(t, rng, rng.IntN(len(reqs.Requests)))
		want, err := single.Retrieve(ctx, req)
		if err != nil {
			t.Fatalf("query %d: single: %v", i, err)
		}
		got, err := root.Retrieve(ctx, req)
		if err != nil {
			t.Fatalf("query %d: root: %v", i, err)
		}
		returned += len(got.Ads)
		if len(got.Ads) != len(want.Ads) || got.Coverage != 1 {
			t.Fatalf("query %d (k %d, filters %v): %d ads, coverage %v; single %d", i, req.K, req.Filters, len(got.Ads), got.Coverage, len(want.Ads))
		}
		for j := range got.Ads {
			g, w := got.Ads[j], want.Ads[j]
			if g.AdId != w.AdId || g.Utility != w.Utility || !slices.Equal(g.Scores, w.Scores) {
				t.Fatalf("query %d position %d: root %v, single %v", i, j, g, w)
			}
		}
	}
	// The root counts the merge volume: at least the ads it returned.
	if merged := testutil.ToFloat64(rs.m.merged); merged < float64(returned) {
		t.Errorf("merge volume %v below the %d ads returned", merged, returned)
	}
	if p := testutil.ToFloat64(rs.m.partial.WithLabelValues("Retrieve")); p != 0 {
		t.Errorf("%v partial answers with every shard up", p)
	}
	// round_robin spread the calls over both replicas of every shard.
	for s, rs := range c.reps {
		for r, rep := range rs {
			if rep.s.served.Load() == 0 {
				t.Errorf("shard %d replica %d (%s) took no call", s, r, rep.addr)
			}
		}
	}
}

// versionedDB is a copy of the test snapshot directory with versions v2
// and v3 added (CURRENT stays at v1, the replicas' starting version),
// made once and only read by the tests. Each new version is refreshed in
// a copy of its own, since a refresh garbage-collects all but the live
// and previous versions.
func versionedDB(t *testing.T) string {
	t.Helper()
	versioned.Do(func() {
		versioned.dir, versioned.err = makeVersionedDB(filepath.Join(filepath.Dir(world.DB), "versioned"))
	})
	if versioned.err != nil {
		t.Fatal(versioned.err)
	}
	return versioned.dir
}

var versioned struct {
	sync.Once
	dir string
	err error
}

func makeVersionedDB(tmp string) (string, error) {
	db := filepath.Join(tmp, "db")
	cp := func(from, to string) error {
		if out, err := exec.Command("cp", "-r", from, to).CombinedOutput(); err != nil {
			return fmt.Errorf("copy: %v %s", err, out)
		}
		return nil
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := cp(world.DB, db); err != nil {
		return "", err
	}
	for i, v := range []string{"v2", "v3"} {
		work := filepath.Join(tmp, v)
		if err := cp(world.DB, work); err != nil {
			return "", err
		}
		if _, err := refresh.Run(context.Background(), refresh.Options{Data: world.Data, ModelDir: world.Models, DBDir: work, Version: v,
			Threads: 2, CheckQueries: 10, Seed: uint64(i + 2), M: 8}); err != nil {
			return "", err
		}
		if err := cp(filepath.Join(work, v), filepath.Join(db, v)); err != nil {
			return "", err
		}
	}
	return db, nil
}

// TestRolloutOverDNS: tandem's rollout finds every replica through DNS,
// stages and activates v2 then v3 under load, drops v1 (V−2) and keeps v2
// for the rollback, which is a rollout of v2. The root follows the
// shards' active version on its own; no call fails and no answer mixes
// versions.
func TestRolloutOverDNS(t *testing.T) {
	db := versionedDB(t)
	c := startDNSCluster(t, db, 2, 2, false)
	s, root, _, _ := start(t, Options{Cluster: c.cl, ModelDir: world.Models, DBDir: db, Poll: 20 * time.Millisecond}, Listen{})
	ctx := context.Background()
	ld := startLoad(t, root)
	roll := func(v string, active string, staged ...string) *rollout.Report {
		t.Helper()
		ld.wait(10)
		rep, err := rollout.Run(ctx, rollout.Options{Targets: c.targets, Version: v, Settle: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Replicas) != 4 {
			t.Fatalf("rollout reached %d replicas, want 4: %+v", len(rep.Replicas), rep.Replicas)
		}
		for _, rs := range c.reps {
			for _, r := range rs {
				in := r.s.info()
				if in.Active != active || !slices.Equal(in.Staged, staged) {
					t.Fatalf("after rollout %s: %s active %s staged %v, want %s %v", v, r.addr, in.Active, in.Staged, active, staged)
				}
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for s.Live().Snapshot() != v {
			if time.Now().After(deadline) {
				t.Fatalf("the root still serves %s, 10 s after the shards activated %s", s.Live().Snapshot(), v)
			}
			time.Sleep(5 * time.Millisecond)
		}
		ld.wait(10)
		return rep
	}
	roll("v2", "v2", "v1", "v2")
	rep := roll("v3", "v3", "v2", "v3")
	for _, r := range rep.Replicas {
		if r.Previous != "v2" || !slices.Equal(r.Dropped, []string{"v1"}) {
			t.Fatalf("rollout v3 on %s: previous %s, dropped %v; want v2, [v1]", r.Addr, r.Previous, r.Dropped)
		}
	}
	// A rerun of the same rollout changes nothing and keeps v2 for the
	// rollback.
	rep = roll("v3", "v3", "v2", "v3")
	for _, r := range rep.Replicas {
		if len(r.Dropped) != 0 {
			t.Fatalf("rerunning the v3 rollout dropped %v on %s", r.Dropped, r.Addr)
		}
	}
	// The rollback is a rollout of the version kept staged.
	rep = roll("v2", "v2", "v2", "v3")
	for _, r := range rep.Replicas {
		if len(r.Dropped) != 0 {
			t.Fatalf("the rollback dropped %v on %s", r.Dropped, r.Addr)
		}
	}
	ld.finish()
	if n := ld.failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed across three rollouts", n, ld.calls.Load())
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if !ld.saw(v) {
			t.Errorf("no answer came from %s: the rollouts were not under load", v)
		}
	}
}

// TestRolloutChangesNothingOnFailure: a shard name that resolves to a
// replica that does not answer, or a version a replica cannot stage,
// fails the rollout with an error naming the replica, and no replica
// activates anything.
func TestRolloutChangesNothingOnFailure(t *testing.T) {
	db := versionedDB(t)
	c := startDNSCluster(t, db, 2, 2, false)
	ctx := context.Background()
	unchanged := func() {
		t.Helper()
		for _, rs := range c.reps {
			for _, r := range rs {
				if in := r.s.info(); in.Active != "v1" {
					t.Fatalf("%s activated %s after a failed rollout", r.addr, in.Active)
				}
			}
		}
	}
	dead := "127.0.2.99"
	c.publish(1, dead)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := rollout.Run(tctx, rollout.Options{Targets: c.targets, Version: "v2", CallTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("shard 1 replica %s:%d", dead, c.ports[1])) || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("rollout with a dead replica: %v", err)
	}
	unchanged()
	c.publish(1)
	_, err = rollout.Run(ctx, rollout.Options{Targets: c.targets, Version: "v9"})
	if err == nil || !strings.Contains(err.Error(), "stage v9: nothing activated") || !strings.Contains(err.Error(), "replica 127.0.") {
		t.Fatalf("rollout of a missing version: %v", err)
	}
	unchanged()
	for _, bad := range []rollout.Options{
		{Targets: c.targets},
		{Version: "v2"},
		{Targets: []string{c.targets[1], c.targets[0]}, Version: "v2"},
		{Targets: []string{"unix:///tmp/x"}, Version: "v2"},
		{Targets: []string{"dns://" + c.dns.Addr() + "/nobody.tandem.test:1"}, Version: "v2"},
	} {
		if _, err := rollout.Run(ctx, bad); err == nil {
			t.Fatalf("rollout %+v succeeded", bad)
		} else {
			t.Logf("%+v: %v", bad.Targets, err)
		}
	}
	unchanged()
}

// TestShardStartsWithPreviousStaged: a replica that starts after a
// publish flipped CURRENT to v2 holds v1 (PREVIOUS) as well, so it can
// answer roots that still pin v1 until the rollout; a PREVIOUS that is
// gone from disk leaves it on CURRENT alone.
func TestShardStartsWithPreviousStaged(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	if out, err := exec.Command("cp", "-r", versionedDB(t), db).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	for name, v := range map[string]string{"CURRENT": "v2", "PREVIOUS": "v1"} {
		if err := os.WriteFile(filepath.Join(db, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewShard(ShardOptions{DBDir: db, Shard: 0, Shards: 2, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.info(); in.Active != "v2" || !slices.Equal(in.Staged, []string{"v1", "v2"}) {
		t.Fatalf("active %s staged %v, want v2 and [v1 v2]", in.Active, in.Staged)
	}
	if err := os.RemoveAll(filepath.Join(db, "v1")); err != nil {
		t.Fatal(err)
	}
	s, err = NewShard(ShardOptions{DBDir: db, Shard: 0, Shards: 2, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.info(); in.Active != "v2" || !slices.Equal(in.Staged, []string{"v2"}) {
		t.Fatalf("with v1 gone: active %s staged %v, want v2 and [v2]", in.Active, in.Staged)
	}
}
