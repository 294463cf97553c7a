//go:build xds

package serve

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

	shardv1 "github.com/tandemml/tandem/proto/tandem/shard/v1"
)

// TestXDSTargets: with -tags xds a root accepts xds:/// shard targets;
// the resolver is the xDS client (here with no control plane configured,
// so the call fails naming the xDS bootstrap, not an unknown scheme).
func TestXDSTargets(t *testing.T) {
	if resolver.Get("xds") == nil {
		t.Fatal("no xds resolver registered")
	}
	t.Setenv("GRPC_XDS_BOOTSTRAP", "")
	t.Setenv("GRPC_XDS_BOOTSTRAP_CONFIG", "")
	cl, err := DialCluster(ClusterOptions{Targets: []string{"xds:///tandem-shard-0", "xds:///tandem-shard-1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cl.Client(0).Info(ctx, &shardv1.InfoRequest{})
	if err == nil || !strings.Contains(err.Error(), "xds") {
		t.Fatalf("an xds target without a control plane: %v, want an xDS client error", err)
	}
	t.Logf("without a control plane: %v", err)
}
