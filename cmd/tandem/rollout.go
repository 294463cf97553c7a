package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandemml/tandem/rollout"
	"github.com/tandemml/tandem/serve"
)

// runRollout is `tandem rollout`: the two-phase version change over every
// replica of every shard (package rollout).
func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rollout", stderr)
	targets := fs.String("shard-targets", "", "one target per shard, comma-separated in shard order, each resolving to all of its replicas (dns:///name:port, dns://server/name:port, or host:port) (required)")
	version := fs.String("version", "", "the snapshot version to activate; an older one still staged is the rollback (required)")
	stageTimeout := fs.Duration("stage-timeout", 30*time.Minute, "how long one replica may take to stage the version")
	callTimeout := fs.Duration("call-timeout", 30*time.Second, "how long every other call may take")
	settle := fs.Duration("settle", 2*time.Second, "pause between staging two replicas of one shard")
	ca := fs.String("ca", "", "dial the replicas over TLS, verifying their certificates against this PEM file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *targets == "" || *version == "" {
		fmt.Fprintln(stderr, "-shard-targets and -version are required")
		fs.Usage()
		return errUsage
	}
	ts := strings.Split(*targets, ",")
	for i, t := range ts {
		if ts[i] = strings.TrimSpace(t); ts[i] == "" {
			return fmt.Errorf("-shard-targets: target %d is empty", i)
		}
	}
	o := rollout.Options{Targets: ts, Version: *version, StageTimeout: *stageTimeout, CallTimeout: *callTimeout, Settle: *settle}
	if *ca != "" {
		tlsOpt, err := serve.ShardTLS(*ca)
		if err != nil {
			return err
		}
		o.Dial = append(o.Dial, tlsOpt)
	}
	t0 := time.Now()
	rep, err := rollout.Run(ctx, o)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "shard\treplica\tprevious\tactive\tdropped")
	for _, r := range rep.Replicas {
		dropped := strings.Join(r.Dropped, ",")
		if dropped == "" {
			dropped = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Shard, r.Addr, r.Previous, rep.Version, dropped)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%s active on %d replicas of %d shards in %.1fs\n", rep.Version, len(rep.Replicas), len(ts), time.Since(t0).Seconds())
	return nil
}
