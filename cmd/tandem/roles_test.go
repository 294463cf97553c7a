package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemml/tandem/internal/dnstest"
	"github.com/tandemml/tandem/internal/fixture"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/reqgen"
	"github.com/tandemml/tandem/snapshot"
)

// TestMainProcess is not a test of its own: the role tests run tandem in
// child processes (so that they can send SIGTERM) by running the test
// binary again with only this test selected and the command line in
// TANDEM_MAIN_ARGS.
func TestMainProcess(t *testing.T) {
	args := os.Getenv("TANDEM_MAIN_ARGS")
	if args == "" {
		t.Skip("runs only as a child process of the role tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Fatalf("TANDEM_MAIN_ARGS: %v", err)
	}
	os.Exit(run(ctx, argv, os.Stdout, os.Stderr))
}

var listening = regexp.MustCompile(`msg=listening grpc=(\S+)`)

// child is a tandem command running in its own process.
type child struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{log: &syncBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
	argv, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Env = append(os.Environ(), "TANDEM_MAIN_ARGS="+string(argv))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitListening waits for the child's listening line and returns its gRPC address.
func waitListening(t *testing.T, log *syncBuffer, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := listening.FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening after 60 s:\n%s", log.String())
		}
		select {
		case err := <-done:
			t.Fatalf("stopped before listening: %v\n%s", err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serveInProcess runs `tandem serve args...` in this process until the
// test ends and returns a client of it.
func serveInProcess(t *testing.T, args ...string) tandemv1.TandemClient {
	t.Helper()
	log := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, args, log, log) }()
	addr := waitListening(t, log, done)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %v: %v\n%s", args, err, log.String())
		}
	})
	return tandemv1.NewTandemClient(cc)
}

// freePort is a TCP port free on 127.0.1.10 now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.1.10:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeRoles runs a sharded deployment from the command line: two
// shards as child processes (`serve --role shard`, shard 0 with two
// replicas behind one DNS name), a root (`serve --role root`) over them,
// and `serve --role all` beside it. The root answers like the single
// process; `tandem rollout` reaches all three replicas; SIGTERM drains a
// replica, which exits cleanly while the root, on the other replica,
// fails no call.
func TestServeRoles(t *testing.T) {
	ctx := context.Background()
	w, err := fixture.Build(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := reqgen.Load(w.Data, w.Cfg, reqgen.Options{Max: 40, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	port := freePort(t)
	hosts := [][]string{{"127.0.1.10", "127.0.1.11"}, {"127.0.2.10"}}
	var targets []string
	var replicas [][]*child
	for s, ips := range hosts {
		name := fmt.Sprintf("tandem-shard-%d.roles.test", s)
		d.Set(name, ips...)
		targets = append(targets, fmt.Sprintf("dns://%s/%s:%d", d.Addr(), name, port))
		var cs []*child
		for _, ip := range ips {
			cs = append(cs, startChild(t, "serve", "-role", "shard", "-shard", fmt.Sprint(s), "-shards", "2", "-db", w.DB,
				"-addr", fmt.Sprintf("%s:%d", ip, port), "-drain", "5s", "-threads", "1"))
		}
		replicas = append(replicas, cs)
	}
	for _, cs := range replicas {
		for _, c := range cs {
			waitListening(t, c.log, c.done)
		}
	}
	root := serveInProcess(t, "-role", "root", "-model", w.Models, "-db", w.DB, "-addr", "127.0.0.1:0", "-poll", "0",
		"-retrieval", "exact", "-shard-targets", strings.Join(targets, ","))
	single := serveInProcess(t, "-model", w.Models, "-db", w.DB, "-addr", "127.0.0.1:0", "-poll", "0", "-retrieval", "exact")
	retrieve := func(i int) *tandemv1.RetrieveRequest {
		r, err := reqs.Retrieve(&reqs.Requests[i%len(reqs.Requests)], 20)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := range reqs.Requests {
		want, err := single.Retrieve(ctx, retrieve(i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := root.Retrieve(ctx, retrieve(i))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Ads) != len(want.Ads) || got.Coverage != 1 {
			t.Fatalf("request %d: root %d ads coverage %v, single %d", i, len(got.Ads), got.Coverage, len(want.Ads))
		}
		for j := range got.Ads {
			if got.Ads[j].AdId != want.Ads[j].AdId || !slices.Equal(got.Ads[j].Scores, want.Ads[j].Scores) {
				t.Fatalf("request %d position %d: root %v, single %v", i, j, got.Ads[j], want.Ads[j])
			}
		}
	}

	live, err := snapshot.Current(w.DB)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "rollout", "-shard-targets", strings.Join(targets, ","), "-version", live, "-settle", "10ms")
	if code != 0 || !strings.Contains(out, live+" active on 3 replicas of 2 shards") {
		t.Fatalf("rollout: exit %d\n%s%s", code, out, errOut)
	}
	for _, ips := range hosts {
		for _, ip := range ips {
			if !strings.Contains(out, fmt.Sprintf("%s:%d", ip, port)) {
				t.Errorf("the rollout's report lacks replica %s:\n%s", ip, out)
			}
		}
	}

	var failed, calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i += 2 {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := root.Retrieve(ctx, retrieve(i)); err != nil {
					failed.Add(1)
					t.Logf("call %d: %v", i, err)
				}
				calls.Add(1)
			}
		}()
	}
	waitCalls := func(n int64) {
		at := calls.Load()
		for calls.Load() < at+n {
			time.Sleep(time.Millisecond)
		}
	}
	waitCalls(30)
	victim := replicas[0][0]
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-victim.done:
		victim.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("the replica exited with %v after SIGTERM:\n%s", err, victim.log.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the replica did not exit within 15 s of SIGTERM:\n%s", victim.log.String())
	}
	if !strings.Contains(victim.log.String(), "msg=draining") {
		t.Errorf("no drain in the replica's log:\n%s", victim.log.String())
	}
	waitCalls(60)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed while a replica drained", n, calls.Load())
	}
}

// TestServeRoleFlags: each role refuses the flags of the others, and a
// shard needs its index.
func TestServeRoleFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-db", "x", "-role", "leaf"}, `-role "leaf": want all, root or shard`},
		{[]string{"serve", "-db", "x", "-role", "shard"}, "needs -shard s and -shards S"},
		{[]string{"serve", "-db", "x", "-role", "shard", "-shard", "2", "-shards", "2"}, "0 ≤ s < S (got 2 of 2)"},
		{[]string{"serve", "-db", "x", "-model", "m", "-shard", "0", "-shards", "2"}, "-shard and -shards are for -role shard"},
		{[]string{"serve", "-db", "x", "-model", "m", "-shard-targets", "a:1"}, "are for -role root"},
		{[]string{"serve", "-db", "x", "-model", "m", "-role", "root"}, "-role root needs -shard-targets"},
		{[]string{"serve", "-db", "x", "-model", "m", "-role", "root", "-shard-targets", "a:1,,b:2"}, "target 1 is empty"},
		{[]string{"serve", "-db", "x", "-role", "shard", "-shard", "0", "-shards", "1", "-metrics-addr", ":0"}, "not served by -role shard"},
		{[]string{"serve", "-db", "x", "-model", "m", "-shard-ca", "ca.pem"}, "are for -role root"},
		{[]string{"rollout", "-version", "v1", "-shard-targets", "a:1", "-ca", "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{[]string{"rollout", "-version", "v1"}, "-shard-targets and -version are required"},
		{[]string{"rollout", "-version", "v1", "-shard-targets", "a:1,"}, "target 1 is empty"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("tandem %v: exit %d, stderr %q; want a failure saying %q", c.args, code, stderr, c.want)
		}
	}
	// -model is not needed by a shard, -db by everyone.
	if code, _, stderr := runCLI(t, "serve", "-role", "shard", "-shard", "0", "-shards", "1"); code != 2 || !strings.Contains(stderr, "-db is required") {
		t.Errorf("shard without -db: exit %d, %q", code, stderr)
	}
}
