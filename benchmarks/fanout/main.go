// Command fanout measures what a sharded deployment adds to Retrieve: the
// latency of a root over S shard processes beside one `--role=all`
// process, on loopback, and the merge volume (hits the shards send the
// root) with the per-shard limit k′ and without it (every shard sends
// the whole K′).
//
//	go run ./benchmarks/fanout -data DIR -model MODELDIR -db DBDIR [-shards 4] [-calls 2000] [-k 100] [-json FILE]
//
// It builds the tandem binary, starts S `serve --role=shard` processes,
// two `serve --role=root` processes over them (one with the default k′
// from the binomial tail, one with -kprime 1000000, which caps at K′) and
// one `serve --role=all`, all from the same snapshot, and sends -calls
// test-day Retrieve requests (reqgen) closed-loop from one goroutine, to
// each server in turn, so that only one deployment is busy at a time.
// Latency is client-side, per call. The merge volume and refetches per
// call come from each root's /metrics counters.
//
// On one machine every process shares the same cores, so the root's
// figure includes the shards' scheduling on them: it is an upper bound
// of the fan-out cost on dedicated machines, plus one loopback hop.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemml/tandem/config"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/reqgen"
)

// Row is one deployment's result.
type Row struct {
	Name              string
	P50, P90, P99     float64 // ms
	Mean              float64 // ms
	MergedPerCall     float64 `json:",omitempty"`
	RefetchesPerCall  float64 `json:",omitempty"`
	Calls, Errors     int
	KPrimeFlag        string `json:",omitempty"`
	UserTowerP50Micro float64
}

// Report is the whole run.
type Report struct {
	Date, CPU           string
	Cores, Shards, K    int
	Calls               int
	Ads                 int64
	Rows                []Row
	RootOverheadP50Ms   float64
	RootOverheadP99Ms   float64
	MergeVolumeSaving   float64 // 1 − merged(k′)/merged(K′)
	Command             string
	SnapshotVersionSeen string
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// proc is a tandem server process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     *lockedBuf
	grpc    string
	metrics string
	conn    *grpc.ClientConn
	client  tandemv1.TandemClient
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listening = regexp.MustCompile(`msg=listening grpc=(\S+) metrics=(\S*)`)

// start runs `tandem args...` and waits until it listens.
func start(bin, name string, args ...string) (*proc, error) {
	p := &proc{name: name, log: &lockedBuf{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	deadline := time.After(10 * time.Minute)
	for {
		if m := listening.FindStringSubmatch(p.log.String()); m != nil {
			p.grpc, p.metrics = m[1], m[2]
			return p, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited before listening (%v):\n%s", name, err, p.log.String())
		case <-deadline:
			p.cmd.Process.Kill()
			return nil, fmt.Errorf("%s not listening after 10 min:\n%s", name, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *proc) stop() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
	}
}

// counter reads one Prometheus counter from the process's /metrics.
func (p *proc) counter(name string) (float64, error) {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s in /metrics", p.name, name)
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "data directory the snapshot was built from (test-day requests)")
	modelDir := fs.String("model", "", "model directory")
	db := fs.String("db", "", "snapshot directory")
	cfgFile := fs.String("config", "", "configuration file of the data (default: the embedded default)")
	shards := fs.Int("shards", 4, "shard processes")
	calls := fs.Int("calls", 2000, "recorded Retrieve calls per deployment")
	warmup := fs.Int("warmup", 100, "unrecorded calls per deployment first")
	k := fs.Int("k", 100, "ads per Retrieve")
	requests := fs.Int("requests", 1000, "distinct test-day requests, cycled")
	bin := fs.String("bin", "", "tandem binary (default: go build into a temporary directory)")
	threads := fs.Int("shard-threads", 1, "threads each shard may use to build an index the snapshot does not store")
	jsonOut := fs.String("json", "", "write the report as JSON here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" || *modelDir == "" || *db == "" {
		return fmt.Errorf("-data, -model and -db are required")
	}
	cfg := config.Default()
	if *cfgFile != "" {
		var err error
		if cfg, err = config.Load(*cfgFile); err != nil {
			return err
		}
	}
	if *bin == "" {
		dir, err := os.MkdirTemp("", "fanout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*bin = filepath.Join(dir, "tandem")
		b := exec.Command("go", "build", "-o", *bin, "github.com/tandemml/tandem/cmd/tandem")
		b.Stdout, b.Stderr = stderr, stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build tandem: %w", err)
		}
	}
	set, err := reqgen.Load(*dataDir, cfg, reqgen.Options{Max: *requests, Seed: 1})
	if err != nil {
		return err
	}
	reqs := make([]*tandemv1.RetrieveRequest, len(set.Requests))
	for i := range set.Requests {
		if reqs[i], err = set.Retrieve(&set.Requests[i], *k); err != nil {
			return err
		}
	}
	if len(reqs) == 0 {
		return fmt.Errorf("%s has no test-day requests", *dataDir)
	}

	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	var targets []string
	for s := range *shards {
		p, err := start(*bin, fmt.Sprintf("shard %d", s), "serve", "-role", "shard", "-shard", fmt.Sprint(s), "-shards", fmt.Sprint(*shards),
			"-db", *db, "-addr", "127.0.0.1:0", "-threads", fmt.Sprint(*threads))
		if err != nil {
			return err
		}
		procs = append(procs, p)
		targets = append(targets, p.grpc)
		fmt.Fprintf(stderr, "shard %d on %s\n", s, p.grpc)
	}
	common := []string{"serve", "-model", *modelDir, "-db", *db, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-poll", "0"}
	type deployment struct {
		p      *proc
		kprime string
	}
	var deps []deployment
	for _, d := range []struct{ name, kprime string }{{"all", ""}, {"root, k′ default", "0"}, {"root, no k′ (K′ per shard)", "1000000"}} {
		a := slices.Clone(common)
		if d.kprime != "" {
			a = append(a, "-role", "root", "-shard-targets", strings.Join(targets, ","), "-kprime", d.kprime)
		}
		p, err := start(*bin, d.name, a...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		if p.conn, err = grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		p.client = tandemv1.NewTandemClient(p.conn)
		deps = append(deps, deployment{p, d.kprime})
	}

	ctx := context.Background()
	lat := make([][]time.Duration, len(deps))
	tower := make([][]float64, len(deps))
	errs := make([]int, len(deps))
	var ads int64
	version := ""
	if info, err := deps[0].p.client.GetModelInfo(ctx, &tandemv1.GetModelInfoRequest{}); err == nil {
		ads, version = info.Ads, info.SnapshotVersion
	}
	before := make([][2]float64, len(deps))
	for i := range *warmup + *calls {
		if i == *warmup {
			for j, d := range deps {
				if d.kprime != "" {
					before[j][0], _ = d.p.counter("tandem_shard_merged_hits_total")
					before[j][1], _ = d.p.counter("tandem_shard_refetches_total")
				}
			}
		}
		req := reqs[i%len(reqs)]
		req.Debug = true
		// Rotate the order, so that no deployment always goes first after
		// another's burst of work.
		for o := range deps {
			j := (i + o) % len(deps)
			t0 := time.Now()
			resp, err := deps[j].p.client.Retrieve(ctx, req)
			d := time.Since(t0)
			if i < *warmup {
				continue
			}
			if err != nil {
				errs[j]++
				continue
			}
			lat[j] = append(lat[j], d)
			for _, st := range resp.Timings {
				if st.Stage == "user_tower" {
					tower[j] = append(tower[j], st.Micros)
				}
			}
		}
	}
	rep := &Report{Date: time.Now().UTC().Format("2006-01-02"), CPU: cpuModel(), Cores: runtime.NumCPU(), Shards: *shards, K: *k,
		Calls: *calls, Ads: ads, SnapshotVersionSeen: version, Command: "go run ./benchmarks/fanout " + strings.Join(args, " ")}
	var merged [2]float64
	for j, d := range deps {
		r := Row{Name: d.p.name, Calls: len(lat[j]), Errors: errs[j], KPrimeFlag: d.kprime}
		r.P50, r.P90, r.P99, r.Mean = pct(lat[j], 0.5), pct(lat[j], 0.9), pct(lat[j], 0.99), mean(lat[j])
		slices.Sort(tower[j])
		if len(tower[j]) > 0 {
			r.UserTowerP50Micro = tower[j][len(tower[j])/2]
		}
		if d.kprime != "" && len(lat[j]) > 0 {
			m, err := d.p.counter("tandem_shard_merged_hits_total")
			if err != nil {
				return err
			}
			rf, err := d.p.counter("tandem_shard_refetches_total")
			if err != nil {
				return err
			}
			r.MergedPerCall = (m - before[j][0]) / float64(len(lat[j])+errs[j])
			r.RefetchesPerCall = (rf - before[j][1]) / float64(len(lat[j])+errs[j])
			merged[j-1] = r.MergedPerCall
		}
		rep.Rows = append(rep.Rows, r)
	}
	rep.RootOverheadP50Ms = rep.Rows[1].P50 - rep.Rows[0].P50
	rep.RootOverheadP99Ms = rep.Rows[1].P99 - rep.Rows[0].P99
	if merged[1] > 0 {
		rep.MergeVolumeSaving = 1 - merged[0]/merged[1]
	}
	print(stdout, rep)
	if *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func print(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%s, %s, %d cores: %d ads, %d shards, k = %d, %d closed-loop calls per deployment\n",
		rep.Date, rep.CPU, rep.Cores, rep.Ads, rep.Shards, rep.K, rep.Calls)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "deployment\tp50 ms\tp90 ms\tp99 ms\tmean ms\tuser tower p50 µs\thits merged / call\trefetches / call\terrors\t")
	for _, r := range rep.Rows {
		m, rf := "-", "-"
		if r.KPrimeFlag != "" {
			m, rf = fmt.Sprintf("%.0f", r.MergedPerCall), fmt.Sprintf("%.3f", r.RefetchesPerCall)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.0f\t%s\t%s\t%d\t\n", r.Name, r.P50, r.P90, r.P99, r.Mean, r.UserTowerP50Micro, m, rf, r.Errors)
	}
	tw.Flush()
	fmt.Fprintf(w, "root overhead: p50 %+.3f ms, p99 %+.3f ms; k′ cuts the merge volume by %.0f%%\n",
		rep.RootOverheadP50Ms, rep.RootOverheadP99Ms, 100*rep.MergeVolumeSaving)
}

// pct is the q-quantile in ms (nearest rank).
func pct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, max(0, int(q*float64(len(s))+0.5)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

func mean(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return float64(t) / float64(len(ds)) / float64(time.Millisecond)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}
