//go:build !race

package refresh

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/snapshot"
	"github.com/tandemml/tandem/store"
)

// TestKilledRefreshTaskRerunMatchesRun is the acceptance test of the job
// as tasks, run as real processes of the tandem binary: embed as 8
// processes (one killed with SIGKILL and rerun), build as 4 shards,
// publish. The version it writes has the ad and item tables of the
// in-process Run byte for byte (so every ad's embeddings), and its
// whole-route recall@10 is within 0.002 of Run's; on a store directory and
// on an S3-compatible server on loopback.
//
// It builds cmd/tandem with the go command (skipped without one) and
// carries a !race build tag like the kill -9 test: its work is in child
// processes, which the race detector does not see.
func TestKilledRefreshTaskRerunMatchesRun(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build cmd/tandem with")
	}
	bin := filepath.Join(t.TempDir(), "tandem")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "github.com/tandemml/tandem/cmd/tandem").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/tandem: %v\n%s", err, out)
	}
	refDB := t.TempDir()
	// Seed, M, efConstruction and CheckQueries at the defaults the
	// command uses, so that both recall checks draw the same queries.
	ref, err := Run(context.Background(), Options{Data: dataDir, ModelDir: modelDir, DBDir: refDB, Version: "ref", Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("dir", func(t *testing.T) {
		tasksAsProcesses(t, bin, filepath.Join(t.TempDir(), "artifacts"), ref, refDB)
	})
	t.Run("s3", func(t *testing.T) {
		backend := s3mem.New()
		if err := backend.CreateBucket("artifacts"); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gofakes3.New(backend).Server())
		defer srv.Close()
		// The children inherit these: static credentials, no profile
		// files, no instance metadata.
		t.Setenv("AWS_ACCESS_KEY_ID", "test")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_REGION", "us-east-1")
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}, "prefix": {"runs/r1/"}}
		tasksAsProcesses(t, bin, "s3://artifacts?"+q.Encode(), ref, refDB)
	})
}

// proc is one child process of the tandem binary and what it printed.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out, err bytes.Buffer
}

func tandemProc(bin, name string, args ...string) *proc {
	p := &proc{name: name, cmd: exec.Command(bin, args...)}
	p.cmd.Env = append(os.Environ(), JobIndexEnv+"=")
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	return p
}

func (p *proc) String() string { return p.name + ":\n" + p.out.String() + p.err.String() }

// runProcs runs ps, at most parallel at a time, and fails t on the first
// that does not exit 0.
func runProcs(t *testing.T, parallel int, ps ...*proc) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	errs := make([]error, len(ps))
	for i, p := range ps {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = p.cmd.Run()
		})
	}
	wg.Wait()
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("%v\n%s", errs[i], p)
		}
	}
}

func tasksAsProcesses(t *testing.T, bin, storeURL string, ref *Report, refDB string) {
	const parts, shards, killed = 8, 4, 5
	ctx := context.Background()
	common := []string{"-data", dataDir, "-model", modelDir, "-store", storeURL, "-threads", "1"}
	embed := func(i int) *proc {
		return tandemProc(bin, fmt.Sprintf("embed part %d", i),
			append([]string{"refresh", "embed", "-part", strconv.Itoa(i), "-parts", strconv.Itoa(parts), "-device", "cpu"}, common...)...)
	}
	build := func(s int) *proc {
		return tandemProc(bin, fmt.Sprintf("build shard %d", s),
			append([]string{"refresh", "build", "-shard", strconv.Itoa(s), "-shards", strconv.Itoa(shards)}, common...)...)
	}

	// The victim is killed as soon as it has started: before it can have
	// written anything, so the kill is deterministic.
	victim := embed(killed)
	if err := victim.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Process.Signal(syscall.SIGKILL)
	var exit *exec.ExitError
	if err := victim.cmd.Wait(); !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the killed part: %v, want killed by SIGKILL\n%s", err, victim)
	}
	rest := map[int]*proc{}
	for i := range parts {
		if i != killed {
			rest[i] = embed(i)
		}
	}
	runProcs(t, 2, slices.Collect(maps.Values(rest))...)
	for i, p := range rest {
		if want := "wrote " + EmbedName(i, parts); !strings.Contains(p.out.String(), want) {
			t.Fatalf("no %q\n%s", want, p)
		}
	}

	// Build refuses the store with the killed part missing, naming it.
	missing := EmbedName(killed, parts)
	early := build(0)
	if err := early.cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(early.err.String(), missing) {
		t.Fatalf("build without %s: %v, want exit 1 naming it\n%s", missing, err, early)
	}
	runProcs(t, 1, embed(killed))
	var builds []*proc
	for s := range shards {
		builds = append(builds, build(s))
	}
	runProcs(t, 2, builds...)

	st, err := store.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var want []string
	for i := range parts {
		want = append(want, EmbedName(i, parts))
	}
	for _, r := range ref.Routes {
		for s := range shards {
			want = append(want, IndexName(r.Route, s, shards))
		}
	}
	if names, err := st.List(ctx, ""); err != nil || !slices.Equal(names, want) {
		t.Fatalf("the store holds %v (%v), want %v", names, err, want)
	}

	// Publish builds the whole-route index itself (no build --shards 1).
	db, js := t.TempDir(), filepath.Join(t.TempDir(), "publish.json")
	runProcs(t, 1, tandemProc(bin, "publish", append([]string{"refresh", "publish", "-db", db, "-version", "tasks", "-json", js}, append(common, "-threads", "2")...)...))
	var rep Report
	if b, err := os.ReadFile(js); err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("publish report: %v", err)
	}
	if cur, _ := snapshot.Current(db); cur != "tasks" {
		t.Fatalf("CURRENT is %q after publish", cur)
	}
	if len(rep.Routes) != len(ref.Routes) || rep.Ads != ref.Ads || rep.Items != ref.Items {
		t.Fatalf("publish report %+v, Run's %+v", rep, *ref)
	}
	for i, r := range rep.Routes {
		if d := math.Abs(r.Recall10 - ref.Routes[i].Recall10); r.Route != ref.Routes[i].Route || r.Ads != ref.Routes[i].Ads || d > 0.002 {
			t.Errorf("route %s: %d ads, recall@10 %.4f; Run: route %s, %d ads, %.4f", r.Route, r.Ads, r.Recall10, ref.Routes[i].Route, ref.Routes[i].Ads, ref.Routes[i].Recall10)
		}
		t.Logf("route %s: recall@10 %.4f (Run %.4f)", r.Route, r.Recall10, ref.Routes[i].Recall10)
	}
	sameTables(t, refDB, "ref", db, "tasks", shards)
}

// sameTables checks that version b has version a's ad and item tables
// byte for byte (their sums over the stored keys and values, and every
// ad's vectors bit for bit), the same route ids and user towers, and
// the per-shard indexes of shards, which split the whole index's ads.
func sameTables(t *testing.T, dbA, a, dbB, b string, shards int) {
	t.Helper()
	sa, err := snapshot.Open(dbA, a)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := snapshot.Open(dbB, b)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	ma, mb := sa.Manifest, sb.Manifest
	same := []string{"ads", "items"}
	for _, r := range ma.Routes {
		same = append(same, "blob:"+snapshot.RouteBlob(r, "ids"), "blob:"+snapshot.RouteBlob(r, "user.safetensors"))
	}
	for _, name := range same {
		if ma.Sums[name] == "" || ma.Sums[name] != mb.Sums[name] || ma.Counts[name] != mb.Counts[name] {
			t.Errorf("%s: %d entries, sum %.12s; Run's %d, %.12s", name, mb.Counts[name], mb.Sums[name], ma.Counts[name], ma.Sums[name])
		}
	}
	vectors := map[int64][]float32{}
	if err := sa.Ads(func(ad *snapshot.Ad) error {
		vectors[ad.ID] = slices.Clone(ad.Vectors)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n, nonzero := 0, 0
	if err := sb.Ads(func(ad *snapshot.Ad) error {
		want, ok := vectors[ad.ID]
		if !ok || len(want) != len(ad.Vectors) {
			return fmt.Errorf("ad %d: %d floats, Run's %d", ad.ID, len(ad.Vectors), len(want))
		}
		for i, v := range ad.Vectors {
			if math.Float32bits(v) != math.Float32bits(want[i]) {
				return fmt.Errorf("ad %d: float %d is %v, Run's %v", ad.ID, i, v, want[i])
			}
		}
		if slices.ContainsFunc(want, func(v float32) bool { return v != 0 }) {
			nonzero++
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(vectors) || nonzero < n/2 {
		t.Fatalf("%d ads (%d with vectors), Run's %d", n, nonzero, len(vectors))
	}

	if len(ma.Shards) != 0 || !slices.Equal(mb.Shards, []int{shards}) {
		t.Fatalf("shard counts %v, Run's %v; want [%d]", mb.Shards, ma.Shards, shards)
	}
	for _, r := range mb.Routes {
		whole, err := sb.Blob(snapshot.RouteBlob(r, "ids"))
		if err != nil {
			t.Fatal(err)
		}
		left := map[int64]bool{}
		for i := 0; i < len(whole); i += 8 {
			left[int64(binary.LittleEndian.Uint64(whole[i:]))] = true
		}
		for s := range shards {
			g, err := sb.Blob(snapshot.ShardBlob(r, shards, s, "index"))
			if err != nil {
				t.Fatal(err)
			}
			ids, err := sb.Blob(snapshot.ShardBlob(r, shards, s, "ids"))
			if err != nil {
				t.Fatal(err)
			}
			graph, err := index.Unmarshal(g)
			if err != nil || graph.Len() != len(ids)/8 || len(ids) == 0 {
				t.Fatalf("route %s shard %d of %d: %d ids, graph %v", r, s, shards, len(ids)/8, err)
			}
			for i := 0; i < len(ids); i += 8 {
				id := int64(binary.LittleEndian.Uint64(ids[i:]))
				if !left[id] {
					t.Fatalf("route %s shard %d: ad %d is not in the whole index or on two shards", r, s, id)
				}
				delete(left, id)
			}
		}
		if len(left) != 0 {
			t.Fatalf("route %s: %d ads of the whole index are on no shard", r, len(left))
		}
	}
}
