package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tandemml/tandem/engine"
	"github.com/tandemml/tandem/gpu"
	"github.com/tandemml/tandem/gpu/cuda"
	"github.com/tandemml/tandem/retrieve"
	"github.com/tandemml/tandem/serve"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	modelDir := fs.String("model", "", "model directory: L2 from MODELDIR/CURRENT (required)")
	db := fs.String("db", "", "snapshot directory: user towers, ads, items and indexes from DBDIR/CURRENT (required)")
	addr := fs.String("addr", "127.0.0.1:7070", "gRPC listen address")
	metricsAddr := fs.String("metrics-addr", "", "HTTP address for /metrics and /debug/pprof/ (default: none)")
	mode := fs.String("retrieval", "hnsw", "hnsw (the ANN index), exact (scan every admitted ad) or gpu-exact (score every admitted ad on the GPU)")
	ef := fs.Int("ef", 0, "HNSW beam width (default K' = max(4k, 200))")
	inflight := fs.Int("max-in-flight", 0, "Retrieve and Rank calls served at once; more are refused with RESOURCE_EXHAUSTED (default 4 × cores)")
	poll := fs.Duration("poll", 2*time.Second, "how often to look for a new DBDIR/CURRENT or MODELDIR/CURRENT (0: never; the Reload RPC still works)")
	bf16 := fs.Bool("bf16", false, "store the big matmul weights in bfloat16")
	cert := fs.String("tls-cert", "", "TLS certificate file (with -tls-key)")
	key := fs.String("tls-key", "", "TLS key file")
	tokenFile := fs.String("token-file", "", "file holding the bearer token tandem's RPCs must carry (health and reflection stay open)")
	device := fs.String("device", "auto", "where the L1 user towers run: auto (the GPU when one is usable, else the CPU with one log line saying why), cpu or gpu (fail without one)")
	precision := fs.String("precision", "fp32", "GPU GEMM precision: fp32, tf32 or bf16")
	drain := fs.Duration("drain", 10*time.Second, "how long shutdown waits for in-flight calls")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelDir == "" || *db == "" {
		fmt.Fprintln(stderr, "-model and -db are required")
		fs.Usage()
		return errUsage
	}
	m, err := retrieve.ParseMode(*mode)
	if err != nil {
		return err
	}
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return fmt.Errorf("-token-file %s is empty", *tokenFile)
		}
	}
	p := *poll
	if p == 0 {
		p = -1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	prec, err := gpu.ParsePrecision(*precision)
	if err != nil {
		return err
	}
	dev, err := gpu.Select(*device, gpu.Options{Paths: cuda.PathsFromEnv(), Precision: prec}, log)
	if err != nil {
		return err
	}
	if dev != nil {
		defer dev.Close()
	}
	s, err := serve.New(serve.Options{ModelDir: *modelDir, DBDir: *db, Retrieval: m, Ef: *ef, MaxInFlight: *inflight, Poll: p,
		Engine: engine.Options{BF16: *bf16}, Device: dev, Log: log})
	if err != nil {
		return err
	}
	return s.Run(ctx, serve.Listen{Addr: *addr, MetricsAddr: *metricsAddr, CertFile: *cert, KeyFile: *key, Token: token, Drain: *drain})
}
