// Command tandem-k8s renders tandem's Kubernetes manifests and runs the
// refresh orchestrator inside the cluster.
//
//	tandem-k8s render [--config FILE] [--shards 4 --replicas 2 --namespace tandem --image IMG] [--out DIR]
//	tandem-k8s jobs [--config FILE] --version V
//	tandem-k8s orchestrate [--config FILE] [--namespace NS] [--version V]
//	tandem-k8s config
//
// render writes one YAML file per component into DIR (or every object
// to stdout); jobs prints the Jobs one refresh creates; orchestrate runs one refresh with the pod's in-cluster
// credentials; config prints the default configuration as JSON, the
// format --config reads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	batchclient "k8s.io/client-go/kubernetes/typed/batch/v1"
	"k8s.io/client-go/rest"

	"github.com/tandemml/tandem/deploy/k8s/manifest"
	"github.com/tandemml/tandem/deploy/k8s/orchestrate"
)

const usage = `usage:
  tandem-k8s render [--config FILE] [--shards N] [--replicas N] [--namespace NS] [--image IMG] [--out DIR]
  tandem-k8s jobs [--config FILE] [--shards N] [--namespace NS] [--image IMG] --version V
  tandem-k8s orchestrate [--config FILE] [--namespace NS] [--version V]
  tandem-k8s config
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tandem-k8s:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "render":
		return render(args[1:], stdout, stderr)
	case "orchestrate":
		return runOrchestrate(ctx, args[1:], stderr)
	case "jobs":
		return jobs(args[1:], stdout, stderr)
	case "config":
		b, err := manifest.ConfigJSON(manifest.Default())
		if err == nil {
			_, err = stdout.Write(b)
		}
		return err
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// configFlags are the flags render and orchestrate share: a config file
// and the fields a flag may override.
type configFlags struct {
	fs               *flag.FlagSet
	file             string
	namespace, image string
	shards, replicas int
}

func newConfigFlags(name string, stderr io.Writer, withShape bool) *configFlags {
	c := &configFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	d := manifest.Default()
	c.fs.StringVar(&c.file, "config", "", "JSON configuration (default: tandem-k8s config's)")
	c.fs.StringVar(&c.namespace, "namespace", d.Namespace, "namespace of every object")
	if withShape {
		c.fs.StringVar(&c.image, "image", d.Image, "tandem image")
		c.fs.IntVar(&c.shards, "shards", d.Shards, "number of shards")
		c.fs.IntVar(&c.replicas, "replicas", d.Replicas, "replicas per shard")
	}
	return c
}

// config reads the config file (or the default) and applies the flags
// given on the command line over it.
func (c *configFlags) config() (manifest.Config, error) {
	cfg := manifest.Default()
	if c.file != "" {
		b, err := os.ReadFile(c.file)
		if err != nil {
			return cfg, err
		}
		if cfg, err = manifest.DecodeConfig(b); err != nil {
			return cfg, fmt.Errorf("%s: %w", c.file, err)
		}
	}
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "namespace":
			cfg.Namespace = c.namespace
		case "image":
			cfg.Image = c.image
		case "shards":
			cfg.Shards = c.shards
		case "replicas":
			cfg.Replicas = c.replicas
		}
	})
	return cfg, cfg.Validate()
}

func render(args []string, stdout, stderr io.Writer) error {
	c := newConfigFlags("render", stderr, true)
	out := c.fs.String("out", "", "directory for one COMPONENT.yaml per component (default: everything to stdout)")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	objs, err := manifest.Render(cfg)
	if err != nil {
		return err
	}
	if *out == "" {
		return manifest.WriteYAML(stdout, objs)
	}
	return writeFiles(*out, objs)
}

// writeFiles writes one file per component into dir.
func writeFiles(dir string, objs []manifest.Object) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range manifest.Files(objs) {
		w, err := os.Create(filepath.Join(dir, f.Name))
		if err != nil {
			return err
		}
		err = manifest.WriteYAML(w, f.Objects)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jobs prints the Jobs a refresh of one version creates, for a look or
// to run a step by hand.
func jobs(args []string, stdout, stderr io.Writer) error {
	c := newConfigFlags("jobs", stderr, true)
	version := c.fs.String("version", "", "the run's version (required)")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	js, err := manifest.RefreshJobs(cfg, *version)
	if err != nil {
		return err
	}
	objs := make([]manifest.Object, len(js))
	for i, j := range js {
		objs[i] = j
	}
	return manifest.WriteYAML(stdout, objs)
}

func runOrchestrate(ctx context.Context, args []string, stderr io.Writer) error {
	c := newConfigFlags("orchestrate", stderr, false)
	version := c.fs.String("version", "", "the run's version (default: from the Job named by $"+manifest.JobNameEnv+", else the UTC time)")
	poll := c.fs.Duration("poll", 5*time.Second, "how often to read a Job's status")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	client, err := batchclient.NewForConfig(rc)
	if err != nil {
		return err
	}
	v, err := pickVersion(ctx, client, cfg.Namespace, *version)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	return orchestrate.Run(ctx, client, cfg, v, orchestrate.Options{Poll: *poll,
		StepTimeout: time.Duration(cfg.StepDeadlineSeconds) * time.Second, Log: log})
}

// pickVersion is the --version given, else the version of the Job this
// pod runs in, else now.
func pickVersion(ctx context.Context, client batchclient.JobsGetter, namespace, flagV string) (string, error) {
	if flagV != "" {
		return flagV, nil
	}
	if job := os.Getenv(manifest.JobNameEnv); job != "" {
		return orchestrate.VersionFromJob(ctx, client, namespace, job)
	}
	return orchestrate.Version(time.Now()), nil
}
