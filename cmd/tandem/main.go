// Command tandem is the single binary of the tandem ads engagement system:
// it simulates data, reports the Bayes-optimal yardstick, and runs the
// end-to-end demo. Each subcommand only parses flags and wires packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"demo", "simulate a demo-scale data set and print its oracle report", runDemo},
	{"simulate", "write a simulated ads data set (seven tables) into a directory", runSimulate},
	{"train", "train the L2 engagement model (and baselines) and publish a model version", runTrain},
	{"eval", "evaluate a data set (--oracle: the Bayes-optimal report; --model: a trained model)", runEval},
	{"validate", "check a data directory against its schema and across tables", runValidate},
	{"import", "map a public data set onto tandem's tables (movielens)", runImport},
	{"refresh", "the nightly job: embed the ads, build the ANN indexes, write and flip a snapshot", runRefresh},
	{"index", "snapshot versions (ls, rollback) and standalone ANN indexes over vector files (build, query)", runIndex},
	{"serve", "serve L1 Retrieve and L2 Rank over gRPC from the live snapshot and model (or one role of a sharded deployment)", runServe},
	{"rollout", "stage and activate a snapshot version on every replica of every shard", runRollout},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			fmt.Fprintf(stderr, "tandem %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "tandem: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tandem <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'tandem <command> -h' for a command's flags.")
}

// errUsage marks a bad command line whose message flag already printed.
var errUsage = errors.New("usage")

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tandem "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
