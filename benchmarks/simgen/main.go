//go:build unix

// Command simgen measures the simulator: wall time, peak resident memory and
// rows per second for one scale, and prints a Markdown row for
// docs/BENCHMARKS.md.
//
//	go run ./benchmarks/simgen -scale quality -out /tmp/tandem-quality
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/sim"
)

func main() {
	scale := flag.String("scale", "quality", "simulator scale")
	out := flag.String("out", "", "output directory (required; large at quality scale)")
	users := flag.Int("users", 0, "override the scale's users (0 keeps it)")
	format := flag.String("format", "parquet", "parquet or jsonl")
	seed := flag.Uint64("seed", 1, "seed")
	keep := flag.Bool("keep", false, "keep the output directory")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "simgen: -out is required")
		os.Exit(2)
	}
	if err := run(*scale, *out, *users, *format, *seed, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "simgen:", err)
		os.Exit(1)
	}
}

func run(scale, out string, users int, format string, seed uint64, keep bool) error {
	f, err := data.ParseFormat(format)
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := sim.Generate(context.Background(), config.Default(), sim.Options{Dir: out, Format: f, Scale: scale, Seed: seed, Users: users})
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	var rows int64
	for _, n := range m.Rows {
		rows += n
	}
	var bytes int64
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			bytes += fi.Size()
		}
	}
	if !keep {
		os.RemoveAll(out)
	}
	fmt.Println("| scale | users | ads | impressions | candidates | events | wall | peak RSS | rows/s | on disk | cores |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %s | %d | %d | %d | %d | %d | %s | %.0f MiB | %.2fM | %.2f GiB | %d |\n",
		scale, m.Rows[data.TableUsers], m.Rows[data.TableAds], m.Rows[data.TableImpressions],
		m.Rows[data.TableCandidates], m.Rows[data.TableEvents], wall.Round(100*time.Millisecond),
		float64(ru.Maxrss)/1024, float64(rows)/wall.Seconds()/1e6, float64(bytes)/(1<<30), runtime.GOMAXPROCS(0))
	return nil
}
