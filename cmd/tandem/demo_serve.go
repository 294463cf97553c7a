package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemml/tandem/config"
	tandemv1 "github.com/tandemml/tandem/proto/tandem/v1"
	"github.com/tandemml/tandem/reqgen"
	"github.com/tandemml/tandem/serve"
)

// demoServe starts the server on a loopback port, sends a few Retrieve and
// Rank calls built from test-day requests over real gRPC, prints them and
// shuts the server down.
func demoServe(ctx context.Context, cfg *config.Config, dataDir, modelDir, dbDir string, stdout io.Writer) error {
	s, err := serve.New(serve.Options{ModelDir: modelDir, DBDir: dbDir, Poll: -1})
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(sctx, serve.Listen{Addr: "127.0.0.1:0", Drain: 5 * time.Second, Ready: func(a, _ string) { ready <- a }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		stop()
		return err
	}
	err = demoCalls(ctx, cfg, dataDir, addr, stdout)
	stop()
	if serr := <-done; err == nil {
		err = serr
	}
	if err == nil {
		fmt.Fprintln(stdout, "server drained and stopped")
	}
	return err
}

func demoCalls(ctx context.Context, cfg *config.Config, dataDir, addr string, w io.Writer) error {
	set, err := reqgen.Load(dataDir, cfg, reqgen.Options{Max: 400, Seed: 7})
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := tandemv1.NewTandemClient(conn)
	info, err := c.GetModelInfo(ctx, &tandemv1.GetModelInfoRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "serving on %s: snapshot %s (%d ads; L1 %v), L2 model %s\n", addr, info.SnapshotVersion, info.Ads, info.L1Versions, info.L2ModelVersion)
	// One request per surface.
	shown := map[string]bool{}
	for i := range set.Requests {
		r := &set.Requests[i]
		if shown[r.Surface] {
			continue
		}
		shown[r.Surface] = true
		rq, err := set.Retrieve(r, 100)
		if err != nil {
			return err
		}
		rq.Debug = true
		t0 := time.Now()
		ret, err := c.Retrieve(ctx, rq)
		if err != nil {
			return err
		}
		rtt := time.Since(t0)
		ids := make([]int64, len(ret.Ads))
		for j, a := range ret.Ads {
			ids[j] = a.AdId
		}
		t0 = time.Now()
		rank, err := c.Rank(ctx, &tandemv1.RankRequest{User: rq.User, AdIds: ids, Debug: true})
		if err != nil {
			return err
		}
		ktt := time.Since(t0)
		ctxDesc := ""
		if rq.User.QueryTopic != nil {
			ctxDesc = fmt.Sprintf(", query topic %d", *rq.User.QueryTopic)
		}
		if rq.User.ContextItemId != nil {
			ctxDesc = fmt.Sprintf(", context item %d", *rq.User.ContextItemId)
		}
		fmt.Fprintf(w, "\nuser %d on %s/%s%s, %d events in the sequence\n", rq.User.UserId, r.Surface, r.ViewType, ctxDesc, len(rq.User.Events))
		fmt.Fprintf(w, "  Retrieve k=100: %d ads in %s (%s)\n", len(ret.Ads), rtt.Round(time.Microsecond), timings(ret.Timings))
		fmt.Fprintf(w, "  Rank of those 100: %s (%s); top 5 by bid × calibrated pCTR:\n", ktt.Round(time.Microsecond), timings(rank.Timings))
		fmt.Fprintf(w, "    %-4s %-10s %-10s", "#", "ad", "L1 pCTR")
		for _, t := range rank.Tasks {
			fmt.Fprintf(w, " %-12s", "p("+t+")")
		}
		fmt.Fprintf(w, " %s\n", "utility")
		l1 := map[int64]float32{}
		for _, a := range ret.Ads {
			l1[a.AdId] = a.Scores[0]
		}
		for j, a := range rank.Ads[:min(5, len(rank.Ads))] {
			fmt.Fprintf(w, "    %-4d %-10d %-10.5f", j+1, a.AdId, l1[a.AdId])
			for _, p := range a.Probabilities {
				fmt.Fprintf(w, " %-12.5f", p)
			}
			fmt.Fprintf(w, " %.5f\n", a.Utility)
		}
	}
	return nil
}

func timings(ts []*tandemv1.StageTiming) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %.0fµs", t.Stage, t.Micros))
	}
	return strings.Join(parts, ", ")
}
