package serve

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/reqgen"
)

// benchSetup serves the deployment under $TANDEM_BENCH_DIR (data/, models/,
// db/ as benchmarks/load's commands make them) or, without it, the test
// fixture, and returns calls built from its test-day requests.
func benchSetup(b *testing.B) (*Server, *reqgen.Set) {
	b.Helper()
	o := Options{ModelDir: world.Models, DBDir: world.DB, Poll: -1}
	set := reqs
	if dir := os.Getenv("TANDEM_BENCH_DIR"); dir != "" {
		o.ModelDir, o.DBDir = filepath.Join(dir, "models"), filepath.Join(dir, "db")
		var err error
		if set, err = reqgen.Load(filepath.Join(dir, "data"), world.Cfg, reqgen.Options{Max: 500, Seed: 1, Candidates: true}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s, set
}

// BenchmarkRetrieve is one Retrieve call (k = 100) through the handler,
// without the network: the server's CPU cost per call.
func BenchmarkRetrieve(b *testing.B) {
	s, set := benchSetup(b)
	var calls []*tandemv1.RetrieveRequest
	for i := range min(len(set.Requests), 200) {
		r, err := set.Retrieve(&set.Requests[i], 100)
		if err != nil {
			b.Fatal(err)
		}
		calls = append(calls, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Retrieve(context.Background(), calls[i%len(calls)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRank500 is one Rank call of 500 candidates through the handler.
func BenchmarkRank500(b *testing.B) {
	s, set := benchSetup(b)
	ids := s.Live().Cat.AdIDs
	var calls []*tandemv1.RankRequest
	for i := range min(len(set.Requests), 50) {
		r, err := set.Rank(&set.Requests[i], 500)
		if err != nil {
			b.Fatal(err)
		}
		seen := map[int64]bool{}
		for _, id := range r.AdIds {
			seen[id] = true
		}
		for j := i * 977; len(r.AdIds) < 500 && len(r.AdIds) < len(ids); j++ {
			if id := ids[j%len(ids)]; !seen[id] {
				seen[id] = true
				r.AdIds = append(r.AdIds, id)
			}
		}
		calls = append(calls, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Rank(context.Background(), calls[i%len(calls)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRetrieveGRPC is one Retrieve (k = 100) over loopback gRPC,
// closed loop, client and server in this process: the handler's cost
// plus protobuf, HTTP/2 and the loopback round trip.
func BenchmarkRetrieveGRPC(b *testing.B) {
	s, set := benchSetup(b)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g, err := s.GRPCServer(Listen{})
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := tandemv1.NewTandemClient(conn)
	var calls []*tandemv1.RetrieveRequest
	for i := range min(len(set.Requests), 200) {
		r, err := set.Retrieve(&set.Requests[i], 100)
		if err != nil {
			b.Fatal(err)
		}
		calls = append(calls, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Retrieve(context.Background(), calls[i%len(calls)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
