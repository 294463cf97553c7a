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
	role := fs.String("role", "all", "all (one process serves everything), shard (one shard's ads and indexes, tandem.shard.v1) or root (user towers and L2, fanning out to -shard-targets)")
	modelDir := fs.String("model", "", "model directory: L2 from MODELDIR/CURRENT (required for -role all and root)")
	db := fs.String("db", "", "snapshot directory: user towers, ads, items and indexes from DBDIR/CURRENT (required)")
	addr := fs.String("addr", "127.0.0.1:7070", "gRPC listen address")
	shardN := fs.Int("shard", -1, "-role shard: which shard this replica holds, 0 ≤ shard < shards")
	shards := fs.Int("shards", 0, "-role shard: the shard count S")
	targets := fs.String("shard-targets", "", "-role root: one gRPC target per shard, comma-separated in shard order (e.g. dns:///tandem-shard-0.tandem:7001,...)")
	partial := fs.Bool("allow-partial", false, "-role root: answer from the shards that respond, with coverage < 1, instead of failing when one is down")
	kprime := fs.Int("kprime", 0, "-role root: per-shard result limit k′ (default from the binomial tail, package shard)")
	shardCA := fs.String("shard-ca", "", "-role root: dial the shards over TLS, verifying their certificates against this PEM file (shards run with -tls-cert)")
	threads := fs.Int("threads", 0, "-role shard: threads to build a shard index the snapshot does not store (default all cores)")
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
	switch *role {
	case "all", "root", "shard":
	default:
		return fmt.Errorf("-role %q: want all, root or shard", *role)
	}
	if *db == "" || (*modelDir == "" && *role != "shard") {
		fmt.Fprintln(stderr, "-db is required, and -model for -role all and root")
		fs.Usage()
		return errUsage
	}
	if *role != "shard" && (*shardN >= 0 || *shards != 0) {
		return fmt.Errorf("-shard and -shards are for -role shard")
	}
	if *role != "root" && (*targets != "" || *partial || *kprime != 0 || *shardCA != "") {
		return fmt.Errorf("-shard-targets, -allow-partial, -kprime and -shard-ca are for -role root")
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
	listen := serve.Listen{Addr: *addr, MetricsAddr: *metricsAddr, CertFile: *cert, KeyFile: *key, Token: token, Drain: *drain}
	if *role == "shard" {
		if *shards < 1 || *shardN < 0 || *shardN >= *shards {
			return fmt.Errorf("-role shard needs -shard s and -shards S with 0 ≤ s < S (got %d of %d)", *shardN, *shards)
		}
		if *metricsAddr != "" || token != "" {
			return fmt.Errorf("-metrics-addr and -token-file are not served by -role shard (it is internal: keep it off public networks)")
		}
		s, err := serve.NewShard(serve.ShardOptions{DBDir: *db, Shard: *shardN, Shards: *shards, Engine: engine.Options{BF16: *bf16},
			Threads: *threads, MaxInFlight: *inflight, Log: log})
		if err != nil {
			return err
		}
		return s.Run(ctx, listen)
	}
	var cluster *serve.Cluster
	if *role == "root" {
		if *targets == "" {
			return fmt.Errorf("-role root needs -shard-targets")
		}
		ts := strings.Split(*targets, ",")
		for i, t := range ts {
			if ts[i] = strings.TrimSpace(t); ts[i] == "" {
				return fmt.Errorf("-shard-targets: target %d is empty", i)
			}
		}
		co := serve.ClusterOptions{Targets: ts, AllowPartial: *partial, KPrime: *kprime}
		if *shardCA != "" {
			tlsOpt, err := serve.ShardTLS(*shardCA)
			if err != nil {
				return err
			}
			co.Dial = append(co.Dial, tlsOpt)
		}
		var err error
		if cluster, err = serve.DialCluster(co); err != nil {
			return err
		}
		defer cluster.Close()
	}
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
		Engine: engine.Options{BF16: *bf16}, Device: dev, Log: log, Cluster: cluster})
	if err != nil {
		return err
	}
	return s.Run(ctx, listen)
}
