package serve

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
)

// Listen are the network settings of Run.
type Listen struct {
	// Addr is the gRPC address, e.g. "127.0.0.1:7070" (":0" picks a port;
	// Ready reports it).
	Addr string
	// MetricsAddr serves /metrics and /debug/pprof/ over HTTP (empty: none).
	MetricsAddr string
	// CertFile and KeyFile turn on TLS.
	CertFile, KeyFile string
	// Token, when set, is the bearer token every Retrieve, Rank,
	// GetModelInfo and Reload call must carry ("authorization: Bearer …");
	// health and reflection stay open.
	Token string
	// MaxRecvBytes bounds a request message (default 4 MiB): a larger one
	// fails with ResourceExhausted before it is decoded.
	MaxRecvBytes int
	// Drain is how long shutdown waits for in-flight calls (default 10 s).
	Drain time.Duration
	// Ready, when set, is called with the bound addresses once serving.
	Ready func(grpcAddr, metricsAddr string)
}

// GRPCServer returns a grpc.Server with s, health and reflection
// registered, and the auth interceptor when l.Token is set.
func (s *Server) GRPCServer(l Listen) (*grpc.Server, error) {
	opts, err := serverOptions(l)
	if err != nil {
		return nil, err
	}
	opts = append(opts, grpc.InTapHandle(s.tap))
	if l.Token != "" {
		opts = append(opts, grpc.UnaryInterceptor(bearer(l.Token)))
	}
	g := grpc.NewServer(opts...)
	tandemv1.RegisterTandemServer(g, s)
	healthpb.RegisterHealthServer(g, s.Health)
	reflection.Register(g)
	return g, nil
}

func tlsCreds(l Listen) (credentials.TransportCredentials, error) {
	creds, err := credentials.NewServerTLSFromFile(l.CertFile, l.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("serve: TLS: %w", err)
	}
	return creds, nil
}

// tap refuses a Retrieve or Rank on the transport's goroutine, before a
// stream goroutine exists, while every admission slot is taken. Without
// it, a saturated server on few cores lets runnable handler goroutines
// pile up ahead of the semaphore, and calls wait until their deadline
// instead of failing fast (measured: docs/BENCHMARKS.md).
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	method := ""
	switch info.FullMethodName {
	case tandemv1.Tandem_Retrieve_FullMethodName:
		method = "Retrieve"
	case tandemv1.Tandem_Rank_FullMethodName:
		method = "Rank"
	default:
		return ctx, nil
	}
	if len(s.sem) < cap(s.sem) {
		return ctx, nil
	}
	s.m.rejected.WithLabelValues(method).Inc()
	s.m.errors.WithLabelValues(method, codes.ResourceExhausted.String()).Inc()
	return nil, status.Errorf(codes.ResourceExhausted, "server busy: all %d admission slots are in use; retry with backoff", cap(s.sem))
}

// bearer checks the authorization metadata of tandem's own methods.
func bearer(token string) grpc.UnaryServerInterceptor {
	want := []byte("Bearer " + token)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, "/"+tandemv1.Tandem_ServiceDesc.ServiceName+"/") {
			return h(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("authorization")
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), want) != 1 {
			return nil, status.Error(codes.Unauthenticated, "missing or wrong bearer token in the authorization metadata")
		}
		return h(ctx, req)
	}
}

// Run serves s until ctx ends, then drains: health turns NOT_SERVING,
// in-flight calls get l.Drain to finish, and the server stops.
func (s *Server) Run(ctx context.Context, l Listen) error {
	g, err := s.GRPCServer(l)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		s.Watch(wctx)
	}()
	// The watcher stops before the sets close: it may be loading one, or
	// asking the shards which version is active.
	closeFn := func() {
		cancel()
		<-watching
		s.Close()
	}
	return runGRPC(ctx, l, g, s.log, s.MetricsHandler(), s.Shutdown, closeFn)
}

// runGRPC serves g on l.Addr (and metrics, when given, on l.MetricsAddr)
// until ctx ends, then drains: shutdown (health NOT_SERVING), in-flight
// calls get l.Drain to finish, the server stops, and closeFn runs.
func runGRPC(ctx context.Context, l Listen, g *grpc.Server, log *slog.Logger, metrics http.Handler, shutdown, closeFn func()) error {
	if l.Drain <= 0 {
		l.Drain = 10 * time.Second
	}
	lis, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", l.Addr, err)
	}
	var hs *http.Server
	metricsAddr := ""
	if l.MetricsAddr != "" && metrics != nil {
		ml, err := net.Listen("tcp", l.MetricsAddr)
		if err != nil {
			lis.Close()
			return fmt.Errorf("serve: listen on %s: %w", l.MetricsAddr, err)
		}
		metricsAddr = ml.Addr().String()
		hs = &http.Server{Handler: metrics, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
	}
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	log.Info("listening", "grpc", lis.Addr().String(), "metrics", metricsAddr)
	if l.Ready != nil {
		l.Ready(lis.Addr().String(), metricsAddr)
	}
	select {
	case err := <-errc:
		if hs != nil {
			hs.Close()
		}
		closeFn()
		return err
	case <-ctx.Done():
	}
	shutdown()
	log.Info("draining", "for", l.Drain.String())
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(l.Drain):
		g.Stop()
	}
	if hs != nil {
		hs.Close()
	}
	closeFn()
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// MetricsHandler serves /metrics (Prometheus) and /debug/pprof/.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
