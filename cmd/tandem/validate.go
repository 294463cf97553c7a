package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/data"
)

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("validate", stderr)
	dir := flags.String("data", "", "data directory (required)")
	cfgPath := flags.String("config", "", "config to check against (default: the one in the directory's manifest, else the built-in default)")
	skip := flags.Bool("skip-candidates", false, "do not read the candidates table (the largest)")
	if err := parse(flags, args); err != nil {
		return err
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "-data is required")
		flags.Usage()
		return errUsage
	}
	cfg, from, err := dataConfig(*dir, *cfgPath)
	if err != nil {
		return err
	}
	t0 := time.Now()
	rows, err := data.Validate(*dir, data.SchemaOf(cfg), data.ValidateOptions{SkipCandidates: *skip})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is valid against the schema of %s (%s)\n", *dir, from, time.Since(t0).Round(time.Millisecond))
	for _, t := range data.Tables {
		if n, ok := rows[t]; ok {
			fmt.Fprintf(stdout, "  %-12s %12d rows\n", t, n)
		}
	}
	return nil
}

// dataConfig picks the config a data directory is checked against: an
// explicit file, else the manifest's, else the built-in default. It also
// says which it took.
func dataConfig(dir, path string) (*config.Config, string, error) {
	if path != "" {
		cfg, err := config.Load(path)
		return cfg, path, err
	}
	m, err := data.ReadManifest(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return config.Default(), "the built-in default config", nil
	case err != nil:
		return nil, "", err
	}
	cfg, err := config.Parse(m.Config)
	if err != nil {
		return nil, "", fmt.Errorf("config in %s's manifest: %w", dir, err)
	}
	return cfg, "its manifest's config", nil
}
