package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tandemml/tandem/data"
	"github.com/tandemml/tandem/data/movielens"
)

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "movielens" {
		fmt.Fprintln(stderr, "usage: tandem import movielens --src DIR --out DIR [--format parquet|jsonl]")
		return errUsage
	}
	fs := newFlagSet("import movielens", stderr)
	src := fs.String("src", "", "the unpacked MovieLens directory (movies.csv, ratings.csv, tags.csv) (required)")
	out := fs.String("out", "", "output data directory (required)")
	format := fs.String("format", "parquet", "table format: parquet or jsonl")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *src == "" || *out == "" {
		fmt.Fprintln(stderr, "-src and -out are required")
		fs.Usage()
		return errUsage
	}
	f, err := data.ParseFormat(*format)
	if err != nil {
		return err
	}
	d, err := movielens.Load(*src)
	if err != nil {
		return err
	}
	m, err := d.Write(*out, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported MovieLens from %s into %s (one surface %s, view type %s; no impressions or ground truth)\n",
		*src, *out, movielens.SurfaceHomeFeed, movielens.ViewTypeGrid)
	for _, t := range []string{data.TableItems, data.TableAds, data.TableUsers, data.TableEvents} {
		fmt.Fprintf(stdout, "  %-8s %8d rows\n", t, m.Rows[t])
	}
	return nil
}
