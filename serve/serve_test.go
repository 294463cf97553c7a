package serve

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/internal/fixture"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/reqgen"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/train"
)

var (
	world *fixture.World
	reqs  *reqgen.Set
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-serve-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if world, err = fixture.Build(context.Background(), dir, 1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if reqs, err = reqgen.Load(world.Data, world.Cfg, reqgen.Options{Max: 200, Seed: 1, Candidates: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// start serves o on a loopback port and returns a connected client; the
// server stops when the test ends.
func start(t *testing.T, o Options, l Listen) (*Server, tandemv1.TandemClient, *grpc.ClientConn, string) {
	t.Helper()
	if o.ModelDir == "" {
		o.ModelDir, o.DBDir = world.Models, world.DB
	}
	if o.Poll == 0 {
		o.Poll = -1
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l.Addr = "127.0.0.1:0"
	ready := make(chan [2]string, 1)
	l.Ready = func(g, m string) { ready <- [2]string{g, m} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l) }()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, tandemv1.NewTandemClient(conn), conn, addrs[1]
}

// rankReq returns the Rank call of a test request with logged candidates.
func rankReq(t *testing.T, i int) *tandemv1.RankRequest {
	t.Helper()
	for k := i; k < len(reqs.Requests); k++ {
		r := &reqs.Requests[k]
		if len(reqs.Candidates[r.RequestID]) > 0 {
			rr, err := reqs.Rank(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			return rr
		}
	}
	t.Fatal("no test request has candidates")
	return nil
}

func retrieveReq(t *testing.T, i, k int) *tandemv1.RetrieveRequest {
	t.Helper()
	rr, err := reqs.Retrieve(&reqs.Requests[i%len(reqs.Requests)], k)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestRetrieveHappyPath(t *testing.T) {
	s, c, _, _ := start(t, Options{}, Listen{})
	cat := s.Live().Cat
	for i := range 20 {
		req := retrieveReq(t, i, 25)
		req.Debug = true
		resp, err := c.Retrieve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Ads) != 25 || resp.Coverage != 1 || resp.SnapshotVersion != "v1" || len(resp.Tasks) != len(world.Cfg.Tasks) {
			t.Fatalf("got %d ads, coverage %v, snapshot %q, tasks %v", len(resp.Ads), resp.Coverage, resp.SnapshotVersion, resp.Tasks)
		}
		if len(resp.Timings) == 0 {
			t.Fatal("debug set but no timings")
		}
		surface := world.Cfg.SurfaceIndex(req.User.Surface)
		seen := map[int64]bool{}
		for j, a := range resp.Ads {
			row, ok := cat.AdRow(a.AdId)
			if !ok || seen[a.AdId] {
				t.Fatalf("ad %d: known %v, repeated %v", a.AdId, ok, seen[a.AdId])
			}
			seen[a.AdId] = true
			if !cat.Active[row] || cat.Eligible[row]&(1<<surface) == 0 {
				t.Fatalf("ad %d is inactive or not eligible on %s", a.AdId, req.User.Surface)
			}
			if want := float64(cat.Bid[row]) * float64(a.Scores[0]); math.Abs(a.Utility-want) > 1e-9*math.Abs(want) {
				t.Fatalf("ad %d: utility %v, bid × pCTR %v", a.AdId, a.Utility, want)
			}
			if j > 0 && a.Utility > resp.Ads[j-1].Utility {
				t.Fatalf("not sorted by utility at %d", j)
			}
		}
	}
}

// TestRetrieveHNSWAgainstExact compares the served HNSW answers with the
// exact scan over the same filtered set.
func TestRetrieveHNSWAgainstExact(t *testing.T) {
	_, hc, _, _ := start(t, Options{}, Listen{})
	_, ec, _, _ := start(t, Options{Retrieval: retrieve.Exact}, Listen{})
	hit, total := 0, 0
	for i := range 40 {
		req := retrieveReq(t, i, 10)
		req.Filters = &tandemv1.Filters{Products: []string{"standard"}, MinBid: 0.5}
		h, err := hc.Retrieve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ec.Retrieve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]bool{}
		for _, a := range e.Ads {
			want[a.AdId] = true
		}
		for _, a := range h.Ads {
			if want[a.AdId] {
				hit++
			}
		}
		total += len(e.Ads)
	}
	if r := float64(hit) / float64(total); total == 0 || r < 0.95 {
		t.Fatalf("HNSW found %d of the exact top-10s' %d ads (%.3f)", hit, total, r)
	}
}

func TestRankHappyPathAndUnknownIDs(t *testing.T) {
	_, c, _, _ := start(t, Options{}, Listen{})
	req := rankReq(t, 0)
	n := len(req.AdIds)
	req.AdIds = append(req.AdIds, -1, 1<<50)
	resp, err := c.Rank(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Ads) != n || len(resp.UnknownAdIds) != 2 || resp.Coverage != 1 {
		t.Fatalf("%d ranked (want %d), unknown %v", len(resp.Ads), n, resp.UnknownAdIds)
	}
	sf := world.Cfg.Surfaces[world.Cfg.SurfaceIndex(req.User.Surface)]
	if strings.Join(resp.Tasks, ",") != strings.Join(sf.Tasks, ",") {
		t.Fatalf("tasks %v, the surface trains %v", resp.Tasks, sf.Tasks)
	}
	for i, a := range resp.Ads {
		for _, p := range a.Probabilities {
			if !(p > 0 && p < 1) {
				t.Fatalf("ad %d: probability %v", a.AdId, p)
			}
		}
		if i > 0 && a.Utility > resp.Ads[i-1].Utility {
			t.Fatalf("not sorted at %d", i)
		}
	}
}

func TestEmptySequence(t *testing.T) {
	_, c, _, _ := start(t, Options{}, Listen{})
	rr := rankReq(t, 0)
	rr.User.Events = nil
	if _, err := c.Rank(context.Background(), rr); err != nil {
		t.Fatal(err)
	}
	q := retrieveReq(t, 0, 5)
	q.User.Events = nil
	q.User.Categorical, q.User.Dense, q.User.Embeddings = nil, nil, nil
	resp, err := c.Retrieve(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Ads) != 5 || len(resp.DefaultedFeatures) != 6 {
		t.Fatalf("%d ads, defaulted %v", len(resp.Ads), resp.DefaultedFeatures)
	}
}

// TestBadInput sends one request per bad-input class of SYSTEM.md §4 and
// expects InvalidArgument naming the field.
func TestBadInput(t *testing.T) {
	s, c, _, _ := start(t, Options{}, Listen{})
	ids := s.Live().Cat.AdIDs
	home := func() *tandemv1.UserContext {
		for i := range reqs.Requests {
			if reqs.Requests[i].Surface == "home_feed" && len(reqs.Candidates[reqs.Requests[i].RequestID]) > 0 {
				u, err := reqs.User(&reqs.Requests[i])
				if err != nil {
					t.Fatal(err)
				}
				if len(u.Events) >= 2 {
					return u
				}
			}
		}
		t.Fatal("no home_feed request with events")
		return nil
	}
	neg := int64(-3)
	topic := int64(4)
	item := int64(7)
	cases := []struct {
		name, field string
		edit        func(u *tandemv1.UserContext)
	}{
		{"unknown surface", "user.surface", func(u *tandemv1.UserContext) { u.Surface = "homefeed" }},
		{"unknown view type", "user.view_type", func(u *tandemv1.UserContext) { u.ViewType = "carousel" }},
		{"view type of another surface", "user.view_type", func(u *tandemv1.UserContext) { u.ViewType = "closeup" }},
		{"NaN dense", `user.dense["activity"]`, func(u *tandemv1.UserContext) { u.Dense["activity"] = math.NaN() }},
		{"Inf dense", `user.dense["account_age_days"]`, func(u *tandemv1.UserContext) { u.Dense["account_age_days"] = math.Inf(-1) }},
		{"dense beyond float32", `user.dense["activity"]`, func(u *tandemv1.UserContext) { u.Dense["activity"] = 1e300 }},
		{"unknown dense", `user.dense["activty"]`, func(u *tandemv1.UserContext) { u.Dense["activty"] = 1 }},
		{"unknown categorical", `user.categorical["region"]`, func(u *tandemv1.UserContext) { u.Categorical["region"] = "eu" }},
		{"embedding width", `user.embeddings["pretrained_emb"]`, func(u *tandemv1.UserContext) {
			u.Embeddings["pretrained_emb"] = &tandemv1.Embedding{Values: []float32{1, 2}}
		}},
		{"NaN embedding", `user.embeddings["pretrained_emb"].values[3]`, func(u *tandemv1.UserContext) {
			v := make([]float32, 32)
			v[3] = float32(math.NaN())
			u.Embeddings["pretrained_emb"] = &tandemv1.Embedding{Values: v}
		}},
		{"unknown embedding", `user.embeddings["photo"]`, func(u *tandemv1.UserContext) { u.Embeddings["photo"] = &tandemv1.Embedding{} }},
		{"too many events", "user.events", func(u *tandemv1.UserContext) {
			for len(u.Events) <= world.Cfg.Sequence.Length {
				u.Events = append(u.Events, u.Events[len(u.Events)-1])
			}
		}},
		{"unknown action", "user.events[1].action", func(u *tandemv1.UserContext) { u.Events[1].Action = "like" }},
		{"unknown event surface", "user.events[0].surface", func(u *tandemv1.UserContext) { u.Events[0].Surface = "" }},
		{"event after the request", "user.events[0].ts_ms", func(u *tandemv1.UserContext) { u.Events[0].TsMs = *u.RequestTimeMs }},
		{"events oldest first", "user.events[1].ts_ms", func(u *tandemv1.UserContext) { u.Events[1].TsMs = u.Events[0].TsMs + 1 }},
		{"negative request time", "user.request_time_ms", func(u *tandemv1.UserContext) { u.RequestTimeMs = &neg }},
		{"query topic off search", "user.query_topic", func(u *tandemv1.UserContext) { u.QueryTopic = &topic }},
		{"context item off related", "user.context_item_id", func(u *tandemv1.UserContext) { u.ContextItemId = &item }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := home()
			tc.edit(u)
			_, err := c.Rank(context.Background(), &tandemv1.RankRequest{User: u, AdIds: ids[:3]})
			wantInvalid(t, err, tc.field)
			_, err = c.Retrieve(context.Background(), &tandemv1.RetrieveRequest{User: u, K: 5})
			wantInvalid(t, err, tc.field)
		})
	}
	calls := []struct {
		name, field string
		call        func() error
	}{
		{"no user", "user", func() error { _, err := c.Retrieve(context.Background(), &tandemv1.RetrieveRequest{K: 3}); return err }},
		{"k zero", "k", func() error {
			_, err := c.Retrieve(context.Background(), &tandemv1.RetrieveRequest{User: home()})
			return err
		}},
		{"k too large", "k", func() error {
			_, err := c.Retrieve(context.Background(), &tandemv1.RetrieveRequest{User: home(), K: 1001})
			return err
		}},
		{"unknown product", "filters.products[1]", func() error {
			_, err := c.Retrieve(context.Background(), &tandemv1.RetrieveRequest{User: home(), K: 3, Filters: &tandemv1.Filters{Products: []string{"standard", "video"}}})
			return err
		}},
		{"NaN min bid", "filters.min_bid", func() error {
			_, err := c.Retrieve(context.Background(), &tandemv1.RetrieveRequest{User: home(), K: 3, Filters: &tandemv1.Filters{MinBid: math.NaN()}})
			return err
		}},
		{"no candidates", "ad_ids", func() error { _, err := c.Rank(context.Background(), &tandemv1.RankRequest{User: home()}); return err }},
		{"too many candidates", "ad_ids", func() error {
			_, err := c.Rank(context.Background(), &tandemv1.RankRequest{User: home(), AdIds: make([]int64, 1001)})
			return err
		}},
		{"repeated candidate", "ad_ids[2]", func() error {
			_, err := c.Rank(context.Background(), &tandemv1.RankRequest{User: home(), AdIds: []int64{ids[0], ids[1], ids[0]}})
			return err
		}},
		{"only unknown candidates", "ad_ids", func() error {
			_, err := c.Rank(context.Background(), &tandemv1.RankRequest{User: home(), AdIds: []int64{-1, -2}})
			return err
		}},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) { wantInvalid(t, tc.call(), tc.field) })
	}
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), field+":") {
		t.Fatalf("got %v %q, want InvalidArgument naming %s", st.Code(), st.Message(), field)
	}
}

func TestOversizedMessage(t *testing.T) {
	_, c, _, _ := start(t, Options{}, Listen{MaxRecvBytes: 64 << 10})
	req := rankReq(t, 0)
	req.AdIds = make([]int64, 20000)
	for i := range req.AdIds {
		req.AdIds[i] = 1<<60 + int64(i) // 9 bytes each on the wire
	}
	_, err := c.Rank(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 160 KB request to a 64 KiB limit: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	s, c, _, _ := start(t, Options{}, Listen{})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	if _, err := s.Rank(ctx, rankReq(t, 0)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("server-side Rank past its deadline: %v", err)
	}
	if _, err := s.Retrieve(ctx, retrieveReq(t, 0, 5)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("server-side Retrieve past its deadline: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Microsecond)
	defer cancel2()
	time.Sleep(time.Millisecond)
	if _, err := c.Retrieve(ctx2, retrieveReq(t, 0, 5)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("over gRPC: %v", err)
	}
}

func TestOverloadIsRejectedAtOnce(t *testing.T) {
	s, c, _, metricsAddr := start(t, Options{MaxInFlight: 2}, Listen{MetricsAddr: "127.0.0.1:0"})
	s.sem <- struct{}{}
	s.sem <- struct{}{}
	t0 := time.Now()
	_, err := c.Retrieve(context.Background(), retrieveReq(t, 0, 5))
	took := time.Since(t0)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("with every slot taken: %v", err)
	}
	t.Logf("rejected in %v (round trip over loopback)", took)
	// A call that got past the transport's check while slots filled up is
	// refused by the handler's own try.
	if _, err := s.Retrieve(context.Background(), retrieveReq(t, 0, 5)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("handler with every slot taken: %v", err)
	}
	<-s.sem
	if _, err := c.Retrieve(context.Background(), retrieveReq(t, 0, 5)); err != nil {
		t.Fatalf("with a slot free: %v", err)
	}
	<-s.sem
	body := get(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{`tandem_rejected_total{method="Retrieve"} 2`, `tandem_rpc_errors_total{code="ResourceExhausted",method="Retrieve"} 2`,
		`tandem_served_version{model="`, `tandem_stage_duration_seconds_count{method="Retrieve",stage="search"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(get(t, "http://"+metricsAddr+"/debug/pprof/"), "goroutine") {
		t.Error("no pprof index on the metrics port")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReloadDuringTraffic refreshes a new snapshot version while clients
// call Retrieve and Rank without pause; the watcher swaps it in. No call
// may fail, and every response names one of the two versions.
func TestReloadDuringTraffic(t *testing.T) {
	db := t.TempDir()
	if err := os.CopyFS(db, os.DirFS(world.DB)); err != nil {
		t.Fatal(err)
	}
	s, c, _, _ := start(t, Options{DBDir: db, ModelDir: world.Models, Poll: 20 * time.Millisecond}, Listen{})
	var calls, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	versions := sync.Map{}
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var v string
				if i%2 == 0 {
					resp, err := c.Retrieve(context.Background(), retrieveReq(t, i, 20))
					if err != nil {
						t.Errorf("Retrieve during reload: %v", err)
						failed.Add(1)
						continue
					}
					v = resp.SnapshotVersion
				} else {
					resp, err := c.Rank(context.Background(), rankReq(t, i%50))
					if err != nil {
						t.Errorf("Rank during reload: %v", err)
						failed.Add(1)
						continue
					}
					v = resp.SnapshotVersion
				}
				versions.Store(v, true)
				calls.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := refresh.Run(context.Background(), refresh.Options{Data: world.Data, ModelDir: world.Models, DBDir: db, Version: "v2", Threads: 1, CheckQueries: 20}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Live().Snapshot() != "v2" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if s.Live().Snapshot() != "v2" {
		t.Fatal("the watcher did not swap in v2")
	}
	if failed.Load() != 0 || calls.Load() < 10 {
		t.Fatalf("%d calls, %d failed", calls.Load(), failed.Load())
	}
	if _, ok := versions.Load("v2"); !ok {
		t.Fatal("no response came from v2")
	}
	info, err := c.GetModelInfo(context.Background(), &tandemv1.GetModelInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.SnapshotVersion != "v2" || info.PreviousSnapshotVersion != "v1" || info.L1Versions["all"] == "" || len(info.L2Versions) != 3 {
		t.Fatalf("info after the reload: %v", info)
	}
	// Rollback by version swaps the kept set back at once.
	r, err := c.Reload(context.Background(), &tandemv1.ReloadRequest{SnapshotVersion: "v1"})
	if err != nil || !r.Changed || r.Info.SnapshotVersion != "v1" {
		t.Fatalf("rollback to v1: %v %v", r, err)
	}
	// A version that does not exist fails and leaves v1 serving.
	_, err = c.Reload(context.Background(), &tandemv1.ReloadRequest{SnapshotVersion: "v9"})
	if status.Code(err) != codes.FailedPrecondition || s.Live().Snapshot() != "v1" {
		t.Fatalf("reload of a missing version: %v, serving %s", err, s.Live().Snapshot())
	}
	// Unchanged: the live versions again.
	if r, err := c.Reload(context.Background(), &tandemv1.ReloadRequest{SnapshotVersion: "v1"}); err != nil || r.Changed {
		t.Fatalf("reload of the live versions: %v %v", r, err)
	}
}

// TestCorruptSnapshotNeverLoads damages a new version's files after it
// went live on disk; the server keeps serving the old one.
func TestCorruptSnapshotNeverLoads(t *testing.T) {
	db := t.TempDir()
	if err := os.CopyFS(db, os.DirFS(world.DB)); err != nil {
		t.Fatal(err)
	}
	s, c, _, _ := start(t, Options{DBDir: db, ModelDir: world.Models}, Listen{})
	if _, err := refresh.Run(context.Background(), refresh.Options{Data: world.Data, ModelDir: world.Models, DBDir: db, Version: "v2", Threads: 1, CheckQueries: 20}); err != nil {
		t.Fatal(err)
	}
	vlogs, _ := filepath.Glob(filepath.Join(db, "v2", "*.vlog"))
	ssts, _ := filepath.Glob(filepath.Join(db, "v2", "*.sst"))
	for _, f := range append(vlogs, ssts...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 3; i < len(b)/3+64 && i < len(b); i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Reload(context.Background(), &tandemv1.ReloadRequest{})
	if status.Code(err) != codes.FailedPrecondition || s.Live().Snapshot() != "v1" {
		t.Fatalf("reload of a damaged version: %v, serving %s", err, s.Live().Snapshot())
	}
	if _, err := c.Retrieve(context.Background(), retrieveReq(t, 0, 5)); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaMismatchRefused(t *testing.T) {
	other := t.TempDir()
	cfg := fixture.SmallConfig()
	cfg.Features.User[0].Vocab = append(cfg.Features.User[0].Vocab, "nz")
	if _, err := train.PublishInit(cfg, other, 2); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSet(world.DB, "v1", other, "", engine.Options{}, Backend{})
	if err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("an L2 of another schema beside the snapshot: %v", err)
	}
}

func TestHealthReflectionShutdown(t *testing.T) {
	s, _, conn, _ := start(t, Options{}, Listen{})
	h := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "tandem.v1.Tandem"} {
		r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, r, err)
		}
	}
	rc, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	lr, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sv := range lr.GetListServicesResponse().GetService() {
		found = found || sv.Name == "tandem.v1.Tandem"
	}
	if !found {
		t.Fatalf("reflection lists %v", lr.GetListServicesResponse().GetService())
	}
	rc.CloseSend()
	s.Shutdown()
	r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after Shutdown: %v %v", r, err)
	}
}

func TestBearerToken(t *testing.T) {
	_, c, conn, _ := start(t, Options{}, Listen{Token: "s3cret"})
	req := retrieveReq(t, 0, 3)
	if _, err := c.Retrieve(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope")
	if _, err := c.Retrieve(bad, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("with a wrong token: %v", err)
	}
	ok := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer s3cret")
	if _, err := c.Retrieve(ok, req); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health needs no token: %v", err)
	}
}

// TestModelReload publishes a new model version (same schema) and expects
// the watcher to serve its L2 with the unchanged snapshot.
func TestModelReload(t *testing.T) {
	models := t.TempDir()
	if err := os.CopyFS(models, os.DirFS(world.Models)); err != nil {
		t.Fatal(err)
	}
	s, c, _, _ := start(t, Options{DBDir: world.DB, ModelDir: models, Poll: 20 * time.Millisecond}, Listen{})
	before := s.Live().Model()
	time.Sleep(1100 * time.Millisecond) // version names carry the second
	v, err := train.PublishInit(world.Cfg, models, 9)
	if err != nil {
		t.Fatal(err)
	}
	if v == before {
		t.Fatalf("the new version has the old name %s", v)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Live().Model() != v && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := c.Rank(context.Background(), rankReq(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ModelVersion != v || resp.SnapshotVersion != "v1" {
		t.Fatalf("after publishing %s: model %s, snapshot %s", v, resp.ModelVersion, resp.SnapshotVersion)
	}
}
