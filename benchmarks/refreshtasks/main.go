// Command refreshtasks measures the wall time of the refresh job on one
// catalog two ways, as processes of a built tandem binary:
//
//   - one: `tandem refresh` in one process (all cores);
//   - tasks S=…: `tandem refresh embed` as -parts processes (-parallel at a
//     time, -threads each), then `refresh build` as S shard processes (S = 1:
//     one whole-route build on all cores), then `refresh publish` (all cores;
//     with S > 1 it builds the whole-route index itself, as the job does when
//     no build --shards 1 task ran), through a store directory.
//
// It prints, per variant and phase, the wall time, the processes' summed CPU
// time and largest resident set, the load average around each variant, and
// the recall@10 of the published version; -json writes the same.
//
//	go build -o T/tandem ./cmd/tandem
//	go run ./benchmarks/refreshtasks -tandem T/tandem -data D -model M -scratch S \
//	    -parts 8 -parallel 2 -shards 1,4 -json refreshtasks.json
//
// Everything it writes goes under -scratch (removed per variant before it
// runs). The machine's other load is not controlled: read the load
// averages beside the times.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// Phase is one step of a variant: one or more processes.
type Phase struct {
	Name       string  `json:"name"`
	Processes  int     `json:"processes"`
	Parallel   int     `json:"parallel"`
	Threads    int     `json:"threads_per_process"`
	Seconds    float64 `json:"wall_seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`     // user + system of all its processes
	SlowestS   float64 `json:"slowest_seconds"` // the longest single process
	MaxRSSMiB  float64 `json:"max_rss_mib"`     // the largest process
}

// Variant is one way of running the job.
type Variant struct {
	Name       string  `json:"name"`
	Phases     []Phase `json:"phases"`
	Seconds    float64 `json:"wall_seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Ads        int     `json:"ads"`
	Recall10   float64 `json:"recall_at_10"` // first route's, from the job's report
	LoadBefore string  `json:"loadavg_before"`
	LoadAfter  string  `json:"loadavg_after"`
}

// Result is the whole run.
type Result struct {
	Date     string    `json:"date"`
	CPUs     int       `json:"cpus"`
	Data     string    `json:"data"`
	Model    string    `json:"model"`
	Parts    int       `json:"parts"`
	Parallel int       `json:"parallel"`
	Variants []Variant `json:"variants"`
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "refreshtasks:", err)
		os.Exit(1)
	}
}

type config struct {
	tandem, data, model, scratch, jsonOut string
	parts, parallel, threads, cores       int
	shards                                []int
	one                                   bool
	extra                                 []string // index flags for refresh, build and publish
	log                                   io.Writer
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refreshtasks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := config{}
	fs.StringVar(&c.tandem, "tandem", "", "the tandem binary (required; go build -o T/tandem ./cmd/tandem)")
	fs.StringVar(&c.data, "data", "", "data directory: the catalog to refresh (required)")
	fs.StringVar(&c.model, "model", "", "model directory (required)")
	fs.StringVar(&c.scratch, "scratch", "", "scratch directory for stores and snapshot directories (required)")
	fs.StringVar(&c.jsonOut, "json", "", "write the result as JSON here")
	fs.IntVar(&c.parts, "parts", 8, "embed parts N")
	fs.IntVar(&c.parallel, "parallel", 2, "embed and shard-build processes at a time")
	fs.IntVar(&c.threads, "threads", 0, "threads of each embed and shard-build process (default: cores / parallel, at least 1)")
	fs.IntVar(&c.cores, "cores", runtime.NumCPU(), "threads of the one-process run, the whole-route build and publish")
	shards := fs.String("shards", "1,4", "comma-separated shard counts S, one tasks variant each")
	fs.BoolVar(&c.one, "one", true, "also time the one-process `tandem refresh`")
	m := fs.Int("m", 0, "HNSW M (0: the default)")
	efc := fs.Int("ef-construction", 0, "HNSW efConstruction (0: the default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.tandem == "" || c.data == "" || c.model == "" || c.scratch == "" {
		fs.Usage()
		return errors.New("-tandem, -data, -model and -scratch are required")
	}
	var err error
	if c.shards, err = parseInts(*shards); err != nil {
		return fmt.Errorf("-shards: %w", err)
	}
	if c.parts < 1 || c.parallel < 1 || c.cores < 1 {
		return errors.New("-parts, -parallel and -cores must be at least 1")
	}
	c.threads = threadsPer(c.threads, c.cores, c.parallel)
	if *m > 0 {
		c.extra = append(c.extra, "-m", strconv.Itoa(*m))
	}
	if *efc > 0 {
		c.extra = append(c.extra, "-ef-construction", strconv.Itoa(*efc))
	}
	c.log = stderr
	res := Result{Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), Data: c.data, Model: c.model, Parts: c.parts, Parallel: c.parallel}
	// The result so far is written after every variant, so that a long
	// run cut short keeps what it measured.
	save := func(v *Variant) error {
		res.Variants = append(res.Variants, *v)
		printTable(c.log, &Result{Date: res.Date, CPUs: res.CPUs, Data: res.Data, Variants: []Variant{*v}})
		if c.jsonOut == "" {
			return nil
		}
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(c.jsonOut, append(b, '\n'), 0o644)
	}
	if c.one {
		v, err := c.runOne()
		if err != nil {
			return err
		}
		if err := save(v); err != nil {
			return err
		}
	}
	for _, S := range c.shards {
		v, err := c.runTasks(S)
		if err != nil {
			return err
		}
		if err := save(v); err != nil {
			return err
		}
	}
	printTable(stdout, &res)
	return nil
}

// parseInts parses "1,4" into distinct positive integers in order.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// threadsPer is the threads of each of parallel concurrent processes:
// flag when set, else the cores shared out, at least one.
func threadsPer(flag, cores, parallel int) int {
	if flag > 0 {
		return flag
	}
	return max(1, cores/parallel)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// job is one child process.
type job struct {
	args     []string
	out, err bytes.Buffer
	wall     time.Duration
	cpu      time.Duration
	rss      int64 // KiB (Linux ru_maxrss)
}

func (c *config) start(args ...string) *job { return &job{args: args} }

// runPhase runs jobs, parallel at a time, and sums them into a Phase.
func (c *config) runPhase(name string, parallel, threads int, jobs []*job) (Phase, error) {
	fmt.Fprintf(c.log, "%s: %s: %d process(es), %d at a time\n", time.Now().UTC().Format("15:04:05"), name, len(jobs), parallel)
	t0 := time.Now()
	err := runPool(parallel, jobs, func(j *job) error {
		cmd := exec.Command(c.tandem, j.args...)
		cmd.Stdout, cmd.Stderr = &j.out, &j.err
		cmd.Env = append(os.Environ(), "JOB_COMPLETION_INDEX=")
		t := time.Now()
		err := cmd.Run()
		j.wall = time.Since(t)
		if ps := cmd.ProcessState; ps != nil {
			j.cpu = ps.UserTime() + ps.SystemTime()
			if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
				j.rss = ru.Maxrss
			}
		}
		if err != nil {
			return fmt.Errorf("tandem %s: %w\n%s%s", strings.Join(j.args, " "), err, tail(j.out.String()), tail(j.err.String()))
		}
		return nil
	})
	p := Phase{Name: name, Processes: len(jobs), Parallel: parallel, Threads: threads, Seconds: time.Since(t0).Seconds()}
	for _, j := range jobs {
		p.CPUSeconds += j.cpu.Seconds()
		p.SlowestS = max(p.SlowestS, j.wall.Seconds())
		p.MaxRSSMiB = max(p.MaxRSSMiB, float64(j.rss)/1024)
	}
	return p, err
}

// runPool calls f on every job, at most parallel at once, and returns the
// first error (the others still finish).
func runPool(parallel int, jobs []*job, f func(*job) error) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(parallel, 1))
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = f(j)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func tail(s string) string {
	const n = 2000
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// report reads the first route's recall and the ad count of a job's JSON.
func report(path string) (ads int, recall float64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var r struct {
		Ads    int `json:"ads"`
		Routes []struct {
			Recall float64 `json:"recall_at_10"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Routes) == 0 {
		return 0, 0, fmt.Errorf("%s: %v (%d routes)", path, err, len(r.Routes))
	}
	return r.Ads, r.Routes[0].Recall, nil
}

func (c *config) fresh(name string) (string, error) {
	dir := filepath.Join(c.scratch, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func (c *config) runOne() (*Variant, error) {
	dir, err := c.fresh("one")
	if err != nil {
		return nil, err
	}
	v := &Variant{Name: "one process", LoadBefore: loadavg()}
	js := filepath.Join(dir, "report.json")
	args := append([]string{"refresh", "-data", c.data, "-model", c.model, "-db", filepath.Join(dir, "db"), "-version", "one",
		"-threads", strconv.Itoa(c.cores), "-device", "cpu", "-json", js}, c.extra...)
	p, err := c.runPhase("refresh", 1, c.cores, []*job{c.start(args...)})
	if err != nil {
		return nil, err
	}
	v.Phases = append(v.Phases, p)
	return v.finish(js)
}

func (v *Variant) finish(js string) (*Variant, error) {
	v.LoadAfter = loadavg()
	for _, p := range v.Phases {
		v.Seconds += p.Seconds
		v.CPUSeconds += p.CPUSeconds
	}
	var err error
	v.Ads, v.Recall10, err = report(js)
	return v, err
}

func (c *config) runTasks(S int) (*Variant, error) {
	dir, err := c.fresh(fmt.Sprintf("tasks-s%d", S))
	if err != nil {
		return nil, err
	}
	v := &Variant{Name: fmt.Sprintf("%d parts, S=%d", c.parts, S), LoadBefore: loadavg()}
	common := []string{"-data", c.data, "-model", c.model, "-store", filepath.Join(dir, "store")}
	var jobs []*job
	for i := range c.parts {
		jobs = append(jobs, c.start(append([]string{"refresh", "embed", "-part", strconv.Itoa(i), "-parts", strconv.Itoa(c.parts),
			"-device", "cpu", "-threads", strconv.Itoa(c.threads)}, common...)...))
	}
	p, err := c.runPhase("embed", c.parallel, c.threads, jobs)
	if err != nil {
		return nil, err
	}
	v.Phases = append(v.Phases, p)
	jobs, par, th := nil, c.parallel, c.threads
	if S == 1 {
		par, th = 1, c.cores
	}
	for s := range S {
		jobs = append(jobs, c.start(append(append([]string{"refresh", "build", "-shard", strconv.Itoa(s), "-shards", strconv.Itoa(S),
			"-threads", strconv.Itoa(th)}, common...), c.extra...)...))
	}
	if p, err = c.runPhase("build", par, th, jobs); err != nil {
		return nil, err
	}
	v.Phases = append(v.Phases, p)
	js := filepath.Join(dir, "report.json")
	name := "publish"
	if S > 1 {
		name = "publish (+ whole-route build)"
	}
	p, err = c.runPhase(name, 1, c.cores, []*job{c.start(append(append([]string{"refresh", "publish", "-db", filepath.Join(dir, "db"),
		"-version", "tasks", "-json", js, "-threads", strconv.Itoa(c.cores)}, common...), c.extra...)...)})
	if err != nil {
		return nil, err
	}
	v.Phases = append(v.Phases, p)
	return v.finish(js)
}

func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%s, %d CPUs, %s\n", r.Date, r.CPUs, r.Data)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tphase\tprocesses\tthreads each\twall s\tslowest s\tCPU s\tmax RSS MiB\t")
	for _, v := range r.Variants {
		for _, p := range v.Phases {
			procs := strconv.Itoa(p.Processes)
			if p.Processes > 1 {
				procs = fmt.Sprintf("%d (%d at a time)", p.Processes, p.Parallel)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.0f\t\n", v.Name, p.Name, procs, p.Threads, p.Seconds, p.SlowestS, p.CPUSeconds, p.MaxRSSMiB)
		}
		fmt.Fprintf(tw, "%s\ttotal\t\t\t%.1f\t\t%.1f\t\t\n", v.Name, v.Seconds, v.CPUSeconds)
	}
	tw.Flush()
	for _, v := range r.Variants {
		fmt.Fprintf(w, "%s: %d ads, recall@10 %.4f, loadavg %s before, %s after\n", v.Name, v.Ads, v.Recall10, v.LoadBefore, v.LoadAfter)
	}
}
