// Command engine times tandem's inference engine beside PyTorch 1.13 on
// the same models, batches and machine: the L1 user tower at batch 1, 64,
// 512 and 2048 (full-length sequences), the L2 model at 1 and 8 users × 500
// candidates (request-level broadcasting on both sides), µs per batch,
// GFLOP/s of the Linear layers and their share of the GEMM peak measured in
// the same run (numpy 2048³ with OpenBLAS on the same number of threads,
// the best of three).
//
//	go run ./benchmarks/engine [-config benchmarks/engine/config.yaml] [-threads N] [-json FILE]
//
// The PyTorch side runs tools/torchref with OPENBLAS_CORETYPE and
// OPENBLAS_L2_SIZE unset, OPENBLAS_NUM_THREADS=1 and torch threads = N, so
// that OpenBLAS and OpenMP do not oversubscribe the cores. PyTorch needs an
// optimised BLAS (Debian: libopenblas0-pthread); with the reference libblas
// alone its numbers are not worth comparing (torchref reports which BLAS
// it loaded).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/train"
)

func main() {
	cfgPath := flag.String("config", filepath.Join("benchmarks", "engine", "config.yaml"), "model config")
	threads := flag.Int("threads", runtime.NumCPU(), "cores for both sides (engine pool size, torch threads)")
	python := flag.String("python", "/usr/bin/python3", "Python with torch and numpy")
	noTorch := flag.Bool("no-torch", false, "time the engine only")
	bf16 := flag.Bool("bf16", false, "also time the engine with bf16 weights")
	minTime := flag.Duration("min-time", time.Second, "minimum timing per shape")
	jsonOut := flag.String("json", "", "write the results as JSON here")
	flag.Parse()
	log.SetFlags(0)

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tandem-bench-engine-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := train.InitExports(cfg, dir, 1); err != nil {
		log.Fatal(err)
	}
	userPath := filepath.Join(dir, "l1", "all", "user.safetensors")
	l2Path := filepath.Join(dir, "l2_home_feed.safetensors")

	res := results{Threads: *threads, Config: *cfgPath, CPU: cpuName()}
	precisions := []bool{false}
	if *bf16 {
		precisions = append(precisions, true)
	}
	for _, b16 := range precisions {
		o := engine.Options{BF16: b16}
		u, err := engine.LoadL1User(userPath, o)
		if err != nil {
			log.Fatal(err)
		}
		l2, err := engine.LoadL2(l2Path, o)
		if err != nil {
			log.Fatal(err)
		}
		p := engine.NewPool(*threads)
		prec := "fp32"
		if b16 {
			prec = "bf16"
		}
		for _, n := range []int{1, 64, 512, 2048} {
			b := engine.RandomBatch(u.Dims(), n, 0, true, 1)
			out := make([]float32, n*len(u.Tasks)*u.OutDim)
			s := timeIt(*minTime, func() {
				if err := p.RunL1User(u, b, out); err != nil {
					log.Fatal(err)
				}
			})
			res.Rows = append(res.Rows, row{Model: "L1 user tower", Shape: fmt.Sprintf("batch %d", n), Precision: prec,
				EngineUs: s * 1e6, GFLOP: 2 * float64(u.MACs(b)) / 1e9})
		}
		for _, users := range []int{1, 8} {
			b := engine.RandomBatch(l2.Dims(), users, users*500, true, 2)
			nt := len(l2.Tasks)
			lg, pr := make([]float32, b.N*nt), make([]float32, b.N*nt)
			s := timeIt(*minTime, func() {
				if err := p.RunL2(l2, b, lg, pr); err != nil {
					log.Fatal(err)
				}
			})
			res.Rows = append(res.Rows, row{Model: "L2", Shape: fmt.Sprintf("%d × 500", users), Precision: prec,
				EngineUs: s * 1e6, GFLOP: 2 * float64(l2.MACs(b)) / 1e9})
		}
		p.Close()
	}
	if !*noTorch {
		torchSide(&res, *python, *threads, userPath, l2Path)
	}
	res.print()
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

type row struct {
	Model, Shape, Precision string
	EngineUs                float64
	TorchUs                 float64 `json:",omitempty"`
	GFLOP                   float64 // per batch, Linear layers only
}

type results struct {
	CPU, Config   string
	Threads       int
	GEMMPeakGFLOP float64 `json:",omitempty"` // numpy 2048³ at Threads
	Rows          []row
	TorchTrain    json.RawMessage `json:",omitempty"`
	Torch         json.RawMessage `json:",omitempty"`
}

// timeIt returns the median seconds of f over at least minTime (and at
// least 5 calls) after two warm-up calls.
func timeIt(minTime time.Duration, f func()) float64 {
	f()
	f()
	var ts []float64
	start := time.Now()
	for len(ts) < 5 || time.Since(start) < minTime {
		t0 := time.Now()
		f()
		ts = append(ts, time.Since(t0).Seconds())
	}
	slices.Sort(ts)
	return ts[len(ts)/2]
}

// torchSide runs tools/torchref's bench on the same exports.
func torchSide(res *results, python string, threads int, userPath, l2Path string) {
	run := func(blasThreads int, args ...string) map[string]json.RawMessage {
		cmd := exec.Command(python, append([]string{filepath.Join("tools", "torchref", "torchref.py"), "bench", "--threads", fmt.Sprint(threads)}, args...)...)
		env := []string{fmt.Sprintf("OPENBLAS_NUM_THREADS=%d", blasThreads)}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "OPENBLAS_") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			log.Fatalf("torchref bench %v: %v", args, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			log.Fatalf("torchref bench output: %v", err)
		}
		return m
	}
	um := run(1, "--export", userPath, "--user-batches", "1,64,512,2048")
	lm := run(1, "--export", l2Path, "--l2-shapes", "1x500,8x500")
	// The peak at the same thread count: OpenBLAS itself on all the threads,
	// the best of three runs (a peak is what the machine can do).
	for range 3 {
		pm := run(threads, "--gemm-peak")
		var peak struct {
			GFLOPs float64 `json:"gflops"`
		}
		json.Unmarshal(pm["gemm_peak"], &peak)
		res.GEMMPeakGFLOP = max(res.GEMMPeakGFLOP, peak.GFLOPs)
	}
	var ub []struct {
		Users int     `json:"users"`
		Us    float64 `json:"us_per_batch"`
	}
	json.Unmarshal(um["user_batches"], &ub)
	var ls []struct {
		Contexts int     `json:"contexts"`
		Us       float64 `json:"us_per_batch"`
	}
	json.Unmarshal(lm["l2_shapes"], &ls)
	for i := range res.Rows {
		r := &res.Rows[i]
		for _, x := range ub {
			if r.Model == "L1 user tower" && r.Shape == fmt.Sprintf("batch %d", x.Users) {
				r.TorchUs = x.Us
			}
		}
		for _, x := range ls {
			if r.Model == "L2" && r.Shape == fmt.Sprintf("%d × 500", x.Contexts) {
				r.TorchUs = x.Us
			}
		}
	}
	all, _ := json.Marshal(map[string]any{"user": um, "l2": lm})
	res.Torch = all
}

func (r *results) print() {
	fmt.Printf("cpu %s, %d threads, config %s", r.CPU, r.Threads, r.Config)
	if r.GEMMPeakGFLOP > 0 {
		fmt.Printf(", GEMM peak (numpy 2048³, %d threads) %.1f GFLOP/s", r.Threads, r.GEMMPeakGFLOP)
	}
	fmt.Println()
	fmt.Println()
	fmt.Println("| model | shape | precision | engine µs | PyTorch µs | PyTorch / engine | engine GFLOP/s | % of GEMM peak |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|")
	for _, x := range r.Rows {
		gf := x.GFLOP / (x.EngineUs / 1e6)
		torch, ratio, peak := "–", "–", "–"
		if x.TorchUs > 0 {
			torch = fmt.Sprintf("%.0f", x.TorchUs)
			ratio = fmt.Sprintf("%.2f×", x.TorchUs/x.EngineUs)
		}
		if r.GEMMPeakGFLOP > 0 {
			peak = fmt.Sprintf("%.0f%%", 100*gf/r.GEMMPeakGFLOP)
		}
		fmt.Printf("| %s | %s | %s | %.0f | %s | %s | %.1f | %s |\n", x.Model, x.Shape, x.Precision, x.EngineUs, torch, ratio, gf, peak)
	}
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.Index(l, ":"); i >= 0 {
				return strings.TrimSpace(l[i+1:])
			}
		}
	}
	return runtime.GOARCH
}
