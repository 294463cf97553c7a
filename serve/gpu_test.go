package serve

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/tandemml/tandem/gpu"
	"github.com/tandemml/tandem/gpu/standin"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/retrieve"
)

// TestRetrieveOnDevice serves from the GPU backend (on the C stand-in,
// which runs the real kernels on the host) over loopback gRPC: user towers
// on the device with HNSW, and gpu-exact, against the CPU exact server.
func TestRetrieveOnDevice(t *testing.T) {
	lib := standin.Build(t, filepath.Join("..", "gpu", "kernels", "host.c"))
	d, err := gpu.Open(gpu.Options{Paths: standin.Paths(lib), Buckets: []int{1, 4}, CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, cc, _, _ := start(t, Options{Retrieval: retrieve.Exact}, Listen{})
	_, dc, _, _ := start(t, Options{Device: d}, Listen{})
	_, xc, _, _ := start(t, Options{Device: d, Retrieval: retrieve.GPUExact}, Listen{})
	for i := range 15 {
		req := retrieveReq(t, i, 10)
		req.Filters = &tandemv1.Filters{Products: []string{"standard"}, MinBid: 0.5}
		want, err := cc.Retrieve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := xc.Retrieve(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Ads) != len(want.Ads) {
			t.Fatalf("request %d: gpu-exact %d ads, exact %d", i, len(got.Ads), len(want.Ads))
		}
		for j := range want.Ads {
			g, w := got.Ads[j], want.Ads[j]
			if g.AdId != w.AdId || math.Abs(g.Utility-w.Utility) > 1e-4*math.Abs(w.Utility)+1e-9 {
				t.Fatalf("request %d rank %d: gpu-exact ad %d utility %v, exact ad %d utility %v", i, j, g.AdId, g.Utility, w.AdId, w.Utility)
			}
		}
		if _, err := dc.Retrieve(context.Background(), req); err != nil {
			t.Fatalf("request %d with device user towers: %v", i, err)
		}
	}
}

// TestGPUExactNeedsDevice: gpu-exact without a device is refused at start.
func TestGPUExactNeedsDevice(t *testing.T) {
	if _, err := New(Options{ModelDir: world.Models, DBDir: world.DB, Retrieval: retrieve.GPUExact, Poll: -1}); err == nil {
		t.Fatal("gpu-exact without a device was accepted")
	}
}
