package gpu

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tandemml/tandem/catalog"
	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/gpu/kernels"
	"github.com/tandemml/tandem/gpu/standin"
	"github.com/tandemml/tandem/index"
	"github.com/tandemml/tandem/internal/fixture"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/snapshot"
)

// world is a tiny deployment (simulated data, initialised models, a
// refreshed snapshot) shared by the tests.
var world *fixture.World

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tandem-gpu-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if world, err = fixture.Build(context.Background(), dir, 3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// open builds the stand-in with the real kernels compiled for the host and
// opens it as a device.
func open(t *testing.T, o Options) (*Device, *standin.Lib) {
	t.Helper()
	lib := standin.Build(t, filepath.Join("kernels", "host.c"))
	sl, err := standin.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	if o.Paths == (cuda.Paths{}) {
		o.Paths = standin.Paths(lib)
	}
	if len(o.Buckets) == 0 {
		o.Buckets = []int{1, 4}
	}
	o.CacheDir = "-"
	d, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, sl
}

func loadCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	v, err := snapshot.Current(world.DB)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(world.DB, v, engine.Options{KeepWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closeTo compares device and CPU vectors: relative tol, absolute near 0.
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]-want[i])) / max(math.Abs(float64(want[i])), 1)
		if !(d <= tol) {
			t.Fatalf("%s[%d] = %v on the device, %v on the CPU engine", what, i, got[i], want[i])
		}
		worst = max(worst, d)
	}
	t.Logf("%s: worst relative difference %.2g", what, worst)
}

// TestUserTowerMatchesEngine runs the whole device path (bindings,
// arenas, graphs, GEMM mapping, kernels compiled for the host) on the
// stand-in and compares it with the CPU engine, over a batch spanning
// two buckets, with and without graphs, through NVRTC and the PTX.
func TestUserTowerMatchesEngine(t *testing.T) {
	c := loadCatalog(t)
	for _, tc := range []struct {
		name string
		o    Options
		tol  float64
	}{
		{"fp32-graphs", Options{}, 1e-4},
		{"fp32-steps-ptx", Options{NoGraphs: true, Paths: cuda.Paths{}}, 1e-4},
		{"bf16", Options{Precision: BF16}, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "fp32-steps-ptx" {
				lib := standin.Build(t, filepath.Join("kernels", "host.c"))
				tc.o.Paths = standin.Paths(lib)
				tc.o.Paths.NVRTC = "none"
			}
			d, sl := open(t, tc.o)
			wantKind := "nvrtc"
			if tc.o.Paths.NVRTC == "none" {
				wantKind = "ptx"
				if sl.ModuleKind() != 1 {
					t.Errorf("without NVRTC the module loaded is of kind %d, want 1 (PTX)", sl.ModuleKind())
				}
			}
			if got := d.Info().Kernels; got != wantKind {
				t.Errorf("kernels from %q, want %q", got, wantKind)
			}
			for _, r := range c.Routes {
				tw, err := d.NewUserTower(r.User)
				if err != nil {
					t.Fatal(err)
				}
				b := engine.RandomBatch(r.User.Dims(), 7, 0, false, 11)
				nt, od := len(c.Tasks), c.OutDim
				want := make([]float32, b.U*nt*od)
				if err := r.User.Run(engine.NewWorker(), b, want); err != nil {
					t.Fatal(err)
				}
				got := make([]float32, b.U*nt*od)
				if err := tw.Run(nil, b, got); err != nil {
					t.Fatal(err)
				}
				closeTo(t, "route "+r.Name+" u", got, want, tc.tol)
				tw.Close()
			}
			if n := sl.Stale(); n != 0 {
				t.Errorf("%d launches referenced freed memory", n)
			}
		})
	}
}

// TestUserTowerBadInput: the device tower validates like the CPU engine.
func TestUserTowerBadInput(t *testing.T) {
	c := loadCatalog(t)
	d, _ := open(t, Options{})
	r := c.Routes[0]
	tw, err := d.NewUserTower(r.User)
	if err != nil {
		t.Fatal(err)
	}
	defer tw.Close()
	b := engine.RandomBatch(r.User.Dims(), 2, 0, false, 1)
	b.UserCats[0] = 1 << 30
	out := make([]float32, 2*len(c.Tasks)*c.OutDim)
	if err := tw.Run(nil, b, out); err == nil || !strings.Contains(err.Error(), "user") {
		t.Errorf("an out-of-range user code: err = %v, want one naming the field", err)
	}
	b = engine.RandomBatch(r.User.Dims(), 2, 0, false, 1)
	if err := tw.Run(nil, b, out[:3]); err == nil {
		t.Error("a short output buffer was accepted")
	}
	m, err := engine.LoadL1UserBytes("user", mustBlob(t, c, r), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.NewUserTower(m); err == nil || !strings.Contains(err.Error(), "KeepWeights") {
		t.Errorf("a model loaded without its weights: err = %v", err)
	}
}

func mustBlob(t *testing.T, c *catalog.Catalog, r *catalog.Route) []byte {
	t.Helper()
	s, err := snapshot.Open(world.DB, c.Version)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Blob("route/" + r.Name + "/user.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSwapFreesAfterDrain: calls running while the weights are swapped
// finish on the old unit, which is freed only then; no launch ever
// touches freed memory, and closing returns every allocation.
func TestSwapFreesAfterDrain(t *testing.T) {
	c := loadCatalog(t)
	d, sl := open(t, Options{})
	live0 := sl.Live()
	r := c.Routes[0]
	tw, err := d.NewUserTower(r.User)
	if err != nil {
		t.Fatal(err)
	}
	b := engine.RandomBatch(r.User.Dims(), 3, 0, false, 5)
	nt, od := len(c.Tasks), c.OutDim
	want := make([]float32, b.U*nt*od)
	if err := r.User.Run(engine.NewWorker(), b, want); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, len(want))
			for range 6 {
				if err := tw.Run(nil, b, out); err != nil {
					errs <- fmt.Errorf("caller %d: %w", g, err)
					return
				}
				for i := range out {
					if math.Abs(float64(out[i]-want[i])) > 1e-3*max(math.Abs(float64(want[i])), 1) {
						errs <- fmt.Errorf("caller %d: u[%d] = %v, want %v", g, i, out[i], want[i])
						return
					}
				}
			}
		}()
	}
	for range 3 {
		if err := tw.Swap(r.User); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tw.Close()
	if n := sl.Stale(); n != 0 {
		t.Errorf("%d launches referenced freed memory", n)
	}
	if got := sl.Live(); got != live0 {
		t.Errorf("%d device allocations live after Close, %d before the tower", got, live0)
	}
	if err := tw.Run(nil, b, make([]float32, len(want))); err == nil {
		t.Error("Run after Close succeeded")
	}
}

// TestStaleLaunchDetected is the control of the test above: freeing a
// unit that graphs still point to makes the next launch fail, so the
// stand-in would catch a swap that freed too early.
func TestStaleLaunchDetected(t *testing.T) {
	c := loadCatalog(t)
	d, sl := open(t, Options{})
	r := c.Routes[0]
	tw, err := d.NewUserTower(r.User)
	if err != nil {
		t.Fatal(err)
	}
	u := tw.cur.Load()
	// Free the weights only (the graphs stay) behind the tower's back.
	if err := d.lanes[0].do(u.arena.free); err != nil {
		t.Fatal(err)
	}
	b := engine.RandomBatch(r.User.Dims(), 1, 0, false, 5)
	if err := tw.Run(nil, b, make([]float32, len(c.Tasks)*c.OutDim)); err == nil {
		t.Error("a graph launched on freed weights without an error")
	}
	if sl.Stale() == 0 {
		t.Error("the stand-in saw no stale pointer")
	}
}

// TestExactMatchesCPU: device exact retrieval returns the CPU exact
// scan's ids and scores under the same filters.
func TestExactMatchesCPU(t *testing.T) {
	c := loadCatalog(t)
	d, _ := open(t, Options{})
	rng := rand.New(rand.NewPCG(4, 4))
	for _, r := range c.Routes {
		a := RouteAds(c, r)
		x, err := d.NewExact(a, 64)
		if err != nil {
			t.Fatal(err)
		}
		nq := 3
		qs := make([]float32, nq*a.Dim)
		for i := range qs {
			qs[i] = float32(rng.NormFloat64())
		}
		fs := []Filter{{SurfaceBits: 1, Products: ^uint64(0)}, {SurfaceBits: 2, Products: 1, MinBid: 0.5}, {SurfaceBits: 0xff, Products: 0b110}}
		for _, k := range []int{1, 10, 64} {
			got, err := x.Search(qs, fs, k)
			if err != nil {
				t.Fatal(err)
			}
			for qi, f := range fs {
				filter := func(id int32) bool {
					return a.Active[id] != 0 && uint32(a.Surfaces[id])&f.SurfaceBits != 0 && f.Products>>a.Product[id]&1 != 0 && a.Bid[id] >= f.MinBid
				}
				want, err := r.Graph.SearchExact(qs[qi*a.Dim:(qi+1)*a.Dim], k, filter, nil)
				if err != nil {
					t.Fatal(err)
				}
				sameResults(t, fmt.Sprintf("route %s query %d k %d", r.Name, qi, k), got[qi], want)
			}
		}
		if _, err := x.Search(qs[:1], fs[:1], 65); err == nil {
			t.Error("k above kmax was accepted")
		}
		if _, err := x.Search([]float32{float32(math.NaN())}, fs[:1], 1); err == nil {
			t.Error("a NaN query was accepted")
		}
		x.Close()
		if _, err := x.Search(qs[:a.Dim], fs[:1], 1); err == nil {
			t.Error("a search after Close succeeded")
		}
	}
}

// sameResults: same length; every device id scores within 1e-5 of the
// CPU's score at its rank (equal scores may swap places).
func sameResults(t *testing.T, what string, got, want []index.Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d results on the device, %d on the CPU", what, len(got), len(want))
	}
	ids := map[int32]bool{}
	for i := range got {
		if math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5*max(1, math.Abs(float64(want[i].Score))) {
			t.Fatalf("%s: rank %d scores %v (id %d) on the device, %v (id %d) on the CPU", what, i, got[i].Score, got[i].ID, want[i].Score, want[i].ID)
		}
		ids[want[i].ID] = true
	}
	miss := slices.IndexFunc(got, func(r index.Result) bool { return !ids[r.ID] })
	if miss >= 0 && got[miss].Score > want[len(want)-1].Score {
		t.Fatalf("%s: device id %d is not in the CPU's results", what, got[miss].ID)
	}
}

// TestSelect: auto falls back with one log line, gpu fails with the
// reason, cpu opens nothing.
func TestSelect(t *testing.T) {
	p := cuda.Paths{CUDA: "/nonexistent/libcuda.so.1", CUBLAS: "/nonexistent/libcublas.so", CUBLASLT: "/nonexistent/libcublasLt.so", NVRTC: "none"}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	d, err := Select("auto", Options{Paths: p}, log)
	if err != nil || d != nil {
		t.Fatalf("auto without a GPU: %v, %v", d, err)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != 1 || !strings.Contains(buf.String(), "falling back to the CPU") || !strings.Contains(buf.String(), "/nonexistent/libcuda.so.1") {
		t.Errorf("auto logged %q, want one line with the reason", buf.String())
	}
	if _, err := Select("gpu", Options{Paths: p}, log); err == nil || !strings.Contains(err.Error(), "/nonexistent/libcuda.so.1") {
		t.Errorf("gpu without a GPU: err = %v, want the paths tried", err)
	}
	if d, err := Select("cpu", Options{Paths: p}, log); d != nil || err != nil {
		t.Errorf("cpu: %v, %v", d, err)
	}
	if _, err := Select("tpu", Options{}, log); err == nil {
		t.Error("an unknown device mode was accepted")
	}
	if _, err := ParsePrecision("fp16"); err == nil {
		t.Error("fp16 was accepted")
	}
}

// TestAdTowerMatchesEngine: the device ad tower gives the CPU engine's a_t
// over a batch spanning buckets, in fp32 and bf16.
func TestAdTowerMatchesEngine(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(world.Models, "*", "l1", "*", "ad.safetensors"))
	if len(paths) == 0 {
		paths, _ = filepath.Glob(filepath.Join(world.Models, "*", "*", "*ad*.safetensors"))
	}
	if len(paths) == 0 {
		t.Fatal("no ad tower export in the fixture's model directory")
	}
	for _, tc := range []struct {
		p   Precision
		tol float64
	}{{FP32, 1e-4}, {BF16, 0.05}} {
		d, _ := open(t, Options{Precision: tc.p})
		m, err := engine.LoadL1Ad(paths[0], engine.Options{KeepWeights: true})
		if err != nil {
			t.Fatal(err)
		}
		tw, err := d.NewAdTower(m)
		if err != nil {
			t.Fatal(err)
		}
		b := engine.RandomBatch(m.Dims(), 0, 9, false, 3)
		nt, od := len(m.Tasks), m.OutDim
		want := make([]float32, b.N*nt*od)
		if err := m.Run(engine.NewWorker(), b, want); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(want))
		if err := tw.Run(b, got); err != nil {
			t.Fatal(err)
		}
		closeTo(t, tc.p.String()+" a", got, want, tc.tol)
		b.AdCats[0] = -1
		if err := tw.Run(b, got); err == nil {
			t.Error("a negative ad code was accepted")
		}
		tw.Close()
	}
}

// TestRefreshOnDevice: the refresh job with its ad towers on the device
// writes the vectors the CPU run writes.
func TestRefreshOnDevice(t *testing.T) {
	d, _ := open(t, Options{Buckets: []int{1, 64}})
	db := t.TempDir()
	o := refresh.Options{Data: world.Data, ModelDir: world.Models, DBDir: db, Version: "dev", Threads: 2, CheckQueries: 20, Seed: 3,
		AdTower: func(m *engine.L1Ad) (refresh.AdRunner, error) { return d.NewAdTower(m) }}
	if _, err := refresh.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	got, err := catalog.Load(db, "dev", engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := loadCatalog(t)
	closeTo(t, "snapshot vectors", got.Vectors, want.Vectors, 1e-4)
}

// TestKernelCheckOnDevice runs every kernel case through the device path
// (driver launches of the loaded module) on the stand-in.
func TestKernelCheckOnDevice(t *testing.T) {
	d, _ := open(t, Options{})
	m := d.KernelMem()
	defer m.Release()
	rs := kernels.Check(m)
	if len(rs) == 0 {
		t.Fatal("no kernel cases")
	}
	for _, r := range rs {
		if !r.OK {
			t.Errorf("%s/%s: %s (max abs %g, tol %g)", r.Kernel, r.Case, r.Err, r.MaxAbs, r.Tol)
		}
	}
}
