// Command load measures tandem's gRPC server open-loop: Poisson arrivals
// at a sweep of target rates, each call sent on its own goroutine at its
// scheduled time, latency measured from the scheduled time (so a server or
// a generator that falls behind shows as queueing instead of being hidden
// by coordinated omission). For each RPC it reports p50/p90/p99/p99.9, the
// achieved rate, errors by gRPC code (ResourceExhausted from admission
// counts as an error) and the highest rate at which p99 stays within the
// goal (Retrieve 5 ms, Rank 20 ms) without errors.
//
//	go run ./benchmarks/load -data DIR -model MODELDIR -db DBDIR [-server-cpus 1] [-gen-cpu 0]
//	    [-retrieve-rates 250,500,1000,1500,2000] [-rank-rates 25,50,100,200] [-duration 10s] [-json FILE]
//
// Requests are -requests distinct test-day requests of DIR (reqgen, the
// same UserContexts the models were evaluated on), cycled. Retrieve asks
// for -k ads; Rank sends -candidates ids: the request's logged candidates,
// padded with other active ads of DIR's ads table (drawn per request with a
// fixed seed) up to the count.
//
// Unless -server-addr names a running server, the tandem binary is built
// into a temporary directory and started as `taskset -c SERVER-CPUS tandem
// serve -poll 0 …` on a free 127.0.0.1 port (with -server-args appended,
// e.g. "-max-in-flight 64"); it is stopped with SIGTERM at the end. Once
// the requests are built and the server answers health checks, the
// generator pins every one of its threads to -gen-cpu and runs with
// GOMAXPROCS=1; each step reports its CPU use (getrusage) in cores, and the
// server's (/proc/PID/stat), so a reader can see which side was busy.
//
// Every step lasts -duration (at most -max-requests calls) after a pause
// that lets the previous step's stragglers finish; each RPC's sweep starts
// with -warmup closed-loop calls that are not recorded. A sweep stops after
// -stop-after consecutive failing steps.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/reqgen"
)

// Step is one rate of a sweep.
type Step struct {
	Rate       float64        `json:"rate"`
	DurationS  float64        `json:"duration_s"`
	Sent       int            `json:"sent"`
	OK         int            `json:"ok"`
	Errors     int            `json:"errors"`
	ErrorCodes map[string]int `json:"error_codes,omitempty"`
	// OfferedRate is calls / scheduled span; AchievedRate is successful
	// calls / (first scheduled send … last completion).
	OfferedRate  float64 `json:"offered_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	// Latencies of the successful calls, from the scheduled send time, ms.
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	// SendLagP99 is how late the generator sent (actual − scheduled), ms.
	SendLagP99 float64 `json:"send_lag_p99_ms"`
	// CPU used during the step, in cores (CPU seconds / wall seconds).
	GenCPU    float64 `json:"generator_cpu_cores"`
	ServerCPU float64 `json:"server_cpu_cores,omitempty"`
	Pass      bool    `json:"pass"`
}

// Sweep is one RPC's steps.
type Sweep struct {
	RPC     string  `json:"rpc"`
	GoalMs  float64 `json:"goal_p99_ms"`
	Steps   []Step  `json:"steps"`
	MaxRate float64 `json:"max_rate_within_goal"`
	// MeanScored is the mean number of ads per response in the warm-up.
	MeanScored float64 `json:"mean_ads_per_response"`
}

// Report is the -json output.
type Report struct {
	Machine struct {
		NProc    int    `json:"nproc"`
		CPUModel string `json:"cpu_model"`
		Go       string `json:"go"`
	} `json:"machine"`
	ServerCPUs   string   `json:"server_cpus"`
	ServerArgs   string   `json:"server_args,omitempty"`
	GenCPU       int      `json:"generator_cpu"`
	Requests     int      `json:"distinct_requests"`
	K            int      `json:"k"`
	Candidates   int      `json:"candidates"`
	Ads          int      `json:"catalog_ads"`
	ModelVersion string   `json:"model_version"`
	Snapshot     string   `json:"snapshot_version"`
	SnapshotAds  int64    `json:"snapshot_ads"`
	Sweeps       []*Sweep `json:"sweeps"`
}

type options struct {
	data, model, db, cfgPath string
	serverAddr, serverBin    string
	serverCPUs, serverArgs   string
	genCPU                   int
	rpcs                     string
	retrieveRates, rankRates []float64
	duration, pause, timeout time.Duration
	maxRequests, requests    int
	k, candidates, warmup    int
	retrieveGoal, rankGoal   time.Duration
	stopAfter                int
	seed                     uint64
	jsonOut                  string
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("bad rate %q", f)
		}
		out = append(out, r)
	}
	sort.Float64s(out)
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.data, "data", "", "data directory: test-day requests, their candidates, the ads table (required)")
	fs.StringVar(&o.model, "model", "", "model directory for the server (required unless -server-addr)")
	fs.StringVar(&o.db, "db", "", "snapshot directory for the server (required unless -server-addr)")
	fs.StringVar(&o.cfgPath, "config", "", "config file for building requests (default: the built-in default)")
	fs.StringVar(&o.serverAddr, "server-addr", "", "load this running server instead of starting one")
	fs.StringVar(&o.serverBin, "server-bin", "", "tandem binary to start (default: go build ./cmd/tandem into a temporary directory)")
	fs.StringVar(&o.serverCPUs, "server-cpus", "1", "taskset -c list for the server (empty: no taskset)")
	fs.StringVar(&o.serverArgs, "server-args", "", "extra `tandem serve` flags, space-separated")
	fs.IntVar(&o.genCPU, "gen-cpu", 0, "core the generator is pinned to (-1: not pinned)")
	fs.StringVar(&o.rpcs, "rpcs", "retrieve,rank", "RPCs to sweep")
	rr := fs.String("retrieve-rates", "250,500,1000,1500,2000", "Retrieve target rates, req/s")
	kr := fs.String("rank-rates", "25,50,100,150,200", "Rank target rates, req/s")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each rate step")
	fs.DurationVar(&o.pause, "pause", time.Second, "pause between steps")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Second, "deadline of each call")
	fs.IntVar(&o.maxRequests, "max-requests", 30000, "cap on the calls of one step")
	fs.IntVar(&o.requests, "requests", 10000, "distinct test-day requests (reqgen Max)")
	fs.IntVar(&o.k, "k", 100, "Retrieve k")
	fs.IntVar(&o.candidates, "candidates", 500, "Rank candidates per call")
	fs.IntVar(&o.warmup, "warmup", 300, "closed-loop calls before each sweep, not recorded")
	fs.DurationVar(&o.retrieveGoal, "retrieve-goal", 5*time.Millisecond, "Retrieve p99 goal")
	fs.DurationVar(&o.rankGoal, "rank-goal", 20*time.Millisecond, "Rank p99 goal")
	fs.IntVar(&o.stopAfter, "stop-after", 2, "stop a sweep after this many consecutive failing steps (0: never)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the request draw, the padding and the arrivals")
	fs.StringVar(&o.jsonOut, "json", "", "write the report as JSON here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.retrieveRates, err = parseRates(*rr); err != nil {
		return err
	}
	if o.rankRates, err = parseRates(*kr); err != nil {
		return err
	}
	if o.data == "" || (o.serverAddr == "" && (o.model == "" || o.db == "")) {
		fs.Usage()
		return errors.New("-data, and -model and -db (or -server-addr), are required")
	}
	cfg := config.Default()
	if o.cfgPath != "" {
		if cfg, err = config.Load(o.cfgPath); err != nil {
			return err
		}
	}

	// Build every call first, on all cores.
	t0 := time.Now()
	set, err := reqgen.Load(o.data, cfg, reqgen.Options{Max: o.requests, Seed: o.seed, Candidates: true})
	if err != nil {
		return err
	}
	if len(set.Requests) < o.requests {
		fmt.Fprintf(stderr, "load: only %d test-day requests in %s (asked for %d)\n", len(set.Requests), o.data, o.requests)
	}
	var active []int64
	nAds := 0
	err = data.ForEach(o.data, data.TableAds, 0, func(rows []data.Ad) error {
		for _, a := range rows {
			nAds++
			if a.Active {
				active = append(active, a.AdID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	retrieves, ranks, err := buildCalls(set, active, o.k, o.candidates, o.seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "load: %d distinct requests, %d ads (%d active) in %s\n", len(set.Requests), nAds, len(active), time.Since(t0).Round(time.Millisecond))

	addr := o.serverAddr
	serverPid := 0
	alive := func() error { return nil }
	if addr == "" {
		srv, err := startServer(o, stderr)
		if err != nil {
			return err
		}
		defer srv.stop(stderr)
		addr, serverPid, alive = srv.addr, srv.cmd.Process.Pid, srv.alive
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			s := <-sig
			srv.stop(stderr)
			fmt.Fprintln(stderr, "load:", s)
			os.Exit(1)
		}()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := waitHealthy(conn, 3*time.Minute); err != nil {
		return err
	}
	client := tandemv1.NewTandemClient(conn)
	info, err := client.GetModelInfo(context.Background(), &tandemv1.GetModelInfoRequest{})
	if err != nil {
		return err
	}

	rep := &Report{ServerCPUs: o.serverCPUs, ServerArgs: o.serverArgs, GenCPU: o.genCPU, Requests: len(set.Requests), K: o.k,
		Candidates: o.candidates, Ads: nAds, ModelVersion: info.L2ModelVersion, Snapshot: info.SnapshotVersion, SnapshotAds: info.Ads}
	rep.Machine.NProc = runtime.NumCPU()
	rep.Machine.CPUModel = cpuModel()
	rep.Machine.Go = runtime.Version()
	if o.serverAddr != "" {
		rep.ServerCPUs = "external"
	}
	if o.genCPU >= 0 {
		if err := pinProcess(o.genCPU); err != nil {
			return err
		}
		cpus, err := affinity()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "load: generator threads on CPUs %v, GOMAXPROCS %d\n", cpus, runtime.GOMAXPROCS(0))
	}
	fmt.Fprintf(stderr, "load: server %s (snapshot %s, %d ads; L2 %s)\n", addr, info.SnapshotVersion, info.Ads, info.L2ModelVersion)

	for _, name := range strings.Split(o.rpcs, ",") {
		var sw *Sweep
		switch strings.TrimSpace(name) {
		case "retrieve":
			sw = &Sweep{RPC: "Retrieve", GoalMs: ms(o.retrieveGoal)}
			call := func(ctx context.Context, i int) (int, error) {
				r, err := client.Retrieve(ctx, retrieves[i%len(retrieves)])
				return len(r.GetAds()), err
			}
			err = sweep(sw, call, o.retrieveRates, o.retrieveGoal, o, serverPid, alive, stderr)
		case "rank":
			sw = &Sweep{RPC: "Rank", GoalMs: ms(o.rankGoal)}
			call := func(ctx context.Context, i int) (int, error) {
				r, err := client.Rank(ctx, ranks[i%len(ranks)])
				return len(r.GetAds()), err
			}
			err = sweep(sw, call, o.rankRates, o.rankGoal, o, serverPid, alive, stderr)
		default:
			return fmt.Errorf("unknown RPC %q in -rpcs", name)
		}
		if err != nil {
			return err
		}
		rep.Sweeps = append(rep.Sweeps, sw)
	}
	printReport(stdout, rep)
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "load: wrote %s\n", o.jsonOut)
	}
	return nil
}

// buildCalls turns the request set into Retrieve calls (top k) and Rank
// calls (n candidates: the logged ones, then active ads drawn per request).
func buildCalls(set *reqgen.Set, active []int64, k, n int, seed uint64) ([]*tandemv1.RetrieveRequest, []*tandemv1.RankRequest, error) {
	if len(active) < n {
		return nil, nil, fmt.Errorf("%d active ads, fewer than -candidates %d", len(active), n)
	}
	var rets []*tandemv1.RetrieveRequest
	var ranks []*tandemv1.RankRequest
	rng := rand.New(rand.NewPCG(seed, 0x706164))
	for i := range set.Requests {
		r := &set.Requests[i]
		ret, err := set.Retrieve(r, k)
		if err != nil {
			return nil, nil, err
		}
		rets = append(rets, ret)
		rk, err := set.Rank(r, n)
		if err != nil {
			return nil, nil, err
		}
		rk.AdIds = pad(rk.AdIds, active, n, rng)
		rk.User = ret.User // the same UserContext, built once
		ranks = append(ranks, rk)
	}
	if len(rets) == 0 {
		return nil, nil, errors.New("no test-day requests")
	}
	return rets, ranks, nil
}

// pad appends distinct ids of pool not yet in ids until ids has n.
func pad(ids, pool []int64, n int, rng *rand.Rand) []int64 {
	have := make(map[int64]bool, n)
	for _, id := range ids {
		have[id] = true
	}
	for len(ids) < n {
		id := pool[rng.IntN(len(pool))]
		if !have[id] {
			have[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

type server struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	done   chan error
	exited atomic.Bool
}

// alive is an error once the server has exited.
func (s *server) alive() error {
	if s.exited.Load() {
		return errors.New("the server exited during the run (its log is above)")
	}
	return nil
}

func startServer(o options, stderr io.Writer) (*server, error) {
	s := &server{done: make(chan error, 1)}
	bin := o.serverBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "tandem-load-")
		if err != nil {
			return nil, err
		}
		s.dir = dir
		bin = filepath.Join(dir, "tandem")
		b := exec.Command("go", "build", "-o", bin, "github.com/tandemml/tandem/cmd/tandem")
		b.Stdout, b.Stderr = stderr, stderr
		if err := b.Run(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("go build ./cmd/tandem: %w", err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = l.Addr().String()
	l.Close()
	argv := []string{bin, "serve", "-model", o.model, "-db", o.db, "-addr", s.addr, "-poll", "0"}
	argv = append(argv, strings.Fields(o.serverArgs)...)
	if o.serverCPUs != "" {
		argv = append([]string{"taskset", "-c", o.serverCPUs}, argv...)
	}
	fmt.Fprintf(stderr, "load: starting %s\n", strings.Join(argv, " "))
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = stderr, stderr
	// No Pdeathsig: Linux sends it when the forking thread exits, which a
	// Go runtime thread may do while the generator runs on. run stops the
	// server on SIGINT and SIGTERM instead.
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := s.cmd.Wait()
		s.exited.Store(true)
		s.done <- err
	}()
	return s, nil
}

func (s *server) stop(stderr io.Writer) {
	if !s.exited.Load() {
		s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	fmt.Fprintln(stderr, "load: server stopped")
}

func waitHealthy(conn *grpc.ClientConn, within time.Duration) error {
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: tandemv1.Tandem_ServiceDesc.ServiceName})
		cancel()
		if err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not serving after %s: %v", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type callFn func(ctx context.Context, i int) (ads int, err error)

func sweep(sw *Sweep, call callFn, rates []float64, goal time.Duration, o options, serverPid int, alive func() error, stderr io.Writer) error {
	// Warm-up: closed loop; any error here is a bad setup, not load.
	ads := 0
	for i := 0; i < o.warmup; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		n, err := call(ctx, i)
		cancel()
		if err != nil {
			return fmt.Errorf("%s warm-up call %d: %w", sw.RPC, i, err)
		}
		ads += n
	}
	if o.warmup > 0 {
		sw.MeanScored = float64(ads) / float64(o.warmup)
	}
	failed := 0
	next := o.warmup
	for si, rate := range rates {
		time.Sleep(o.pause)
		at := Arrivals(rate, o.duration, o.maxRequests, o.seed+uint64(si)*0x9e37)
		st := step(call, at, next, o.timeout, serverPid)
		if err := alive(); err != nil {
			return err
		}
		next += len(at)
		st.Rate = rate
		st.Pass = st.Errors == 0 && st.OK > 0 && st.P99 <= ms(goal)
		sw.Steps = append(sw.Steps, st)
		fmt.Fprintf(stderr, "load: %s %6.0f req/s: p50 %.2f p99 %.2f p99.9 %.2f ms, achieved %.0f/s, errors %d %v, gen CPU %.2f, server CPU %.2f\n",
			sw.RPC, rate, st.P50, st.P99, st.P999, st.AchievedRate, st.Errors, st.ErrorCodes, st.GenCPU, st.ServerCPU)
		if st.Pass {
			failed = 0
		} else if failed++; o.stopAfter > 0 && failed >= o.stopAfter {
			break
		}
	}
	sw.MaxRate = MaxRateWithin(sw.Steps)
	return nil
}

// step sends call(first+i) at offset at[i] from now, each on its own
// goroutine, and waits for all of them.
func step(call callFn, at []time.Duration, first int, timeout time.Duration, serverPid int) Step {
	n := len(at)
	lat := make([]time.Duration, n)
	lag := make([]time.Duration, n)
	errc := make([]codes.Code, n)
	var wg sync.WaitGroup
	cpu0, scpu0 := cpuSelf(), cpuOf(serverPid)
	start := time.Now()
	for i, off := range at {
		if d := off - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int, sched time.Time) {
			defer wg.Done()
			lag[i] = time.Since(sched)
			ctx, cancel := context.WithDeadline(context.Background(), sched.Add(timeout))
			_, err := call(ctx, first+i)
			cancel()
			lat[i] = time.Since(sched)
			errc[i] = status.Code(err)
		}(i, start.Add(off))
	}
	wg.Wait()
	wall := time.Since(start)
	cpu, scpu := cpuSelf()-cpu0, cpuOf(serverPid)-scpu0

	st := Step{DurationS: wall.Seconds(), Sent: n, ErrorCodes: map[string]int{}}
	var ok []time.Duration
	last := time.Duration(0)
	for i := range n {
		if errc[i] == codes.OK {
			ok = append(ok, lat[i])
			last = max(last, at[i]+lat[i])
		} else {
			st.ErrorCodes[errc[i].String()]++
		}
	}
	st.OK, st.Errors = len(ok), n-len(ok)
	if n > 0 {
		st.OfferedRate = float64(n) / at[n-1].Seconds()
	}
	if last > 0 {
		st.AchievedRate = float64(st.OK) / last.Seconds()
	}
	p := Percentiles(ok, []float64{0.5, 0.9, 0.99, 0.999, 1})
	st.P50, st.P90, st.P99, st.P999, st.Max = ms(p[0]), ms(p[1]), ms(p[2]), ms(p[3]), ms(p[4])
	st.SendLagP99 = ms(Percentiles(lag, []float64{0.99})[0])
	st.GenCPU = cpu.Seconds() / wall.Seconds()
	if serverPid > 0 {
		st.ServerCPU = scpu.Seconds() / wall.Seconds()
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func printReport(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s; server on CPUs %s %s, generator on CPU %d\n", rep.Machine.NProc, rep.Machine.CPUModel,
		rep.Machine.Go, rep.ServerCPUs, rep.ServerArgs, rep.GenCPU)
	fmt.Fprintf(w, "snapshot %s (%d ads), L2 %s; %d distinct requests, k=%d, %d Rank candidates\n", rep.Snapshot, rep.SnapshotAds,
		rep.ModelVersion, rep.Requests, rep.K, rep.Candidates)
	for _, sw := range rep.Sweeps {
		fmt.Fprintf(w, "\n%s (goal p99 ≤ %g ms; %.0f ads per response)\n", sw.RPC, sw.GoalMs, sw.MeanScored)
		fmt.Fprintf(w, "%8s %8s %9s %7s %7s %7s %7s %8s %8s %6s %6s %6s  %s\n", "rate", "calls", "achieved", "p50", "p90", "p99", "p99.9",
			"max", "sendlag", "genCPU", "srvCPU", "pass", "errors")
		for _, s := range sw.Steps {
			codes := make([]string, 0, len(s.ErrorCodes))
			for c, n := range s.ErrorCodes {
				codes = append(codes, fmt.Sprintf("%s=%d", c, n))
			}
			sort.Strings(codes)
			fmt.Fprintf(w, "%8.0f %8d %9.0f %7.2f %7.2f %7.2f %7.2f %8.2f %8.2f %6.2f %6.2f %6v  %s\n", s.Rate, s.Sent, s.AchievedRate,
				s.P50, s.P90, s.P99, s.P999, s.Max, s.SendLagP99, s.GenCPU, s.ServerCPU, s.Pass, strings.Join(codes, " "))
		}
		fmt.Fprintf(w, "highest rate within the goal, no errors: %.0f req/s\n", sw.MaxRate)
	}
}
