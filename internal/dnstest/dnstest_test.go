package dnstest

import (
	"context"
	"net"
	"slices"
	"testing"
)

func resolver(s *Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
}

func TestServerAnswersFromItsTable(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Set("shard-0.tandem.test", "127.0.0.10", "127.0.0.11")
	r := resolver(s)
	ctx := context.Background()
	got, err := r.LookupHost(ctx, "shard-0.tandem.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"127.0.0.10", "127.0.0.11"}) {
		t.Fatalf("got %v", got)
	}
	// A replica leaves: the next lookup no longer returns it.
	s.Set("shard-0.tandem.test", "127.0.0.11")
	if got, err = r.LookupHost(ctx, "SHARD-0.tandem.test"); err != nil || !slices.Equal(got, []string{"127.0.0.11"}) {
		t.Fatalf("after the change: %v %v", got, err)
	}
	if _, err := r.LookupHost(ctx, "nobody.tandem.test"); err == nil {
		t.Fatal("an unknown name resolved")
	}
	// A name with no ready address exists but has none.
	s.Set("shard-1.tandem.test")
	if got, err := r.LookupHost(ctx, "shard-1.tandem.test"); err == nil && len(got) > 0 {
		t.Fatalf("empty name resolved to %v", got)
	}
}

func TestSetRejectsANonAddress(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if recover() == nil {
			t.Fatal("Set took a host name as an address")
		}
	}()
	s.Set("x.test", "not-an-ip")
}
