package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/deploy/k8s/manifest"
)

// TestRenderDefaultsMatchesCommitted checks that `render --out DIR`
// with the documented flags writes the committed files.
func TestRenderDefaultsMatchesCommitted(t *testing.T) {
	dir := t.TempDir()
	args := []string{"render", "--shards", "4", "--replicas", "2", "--namespace", "tandem", "--out", dir}
	if err := run(context.Background(), args, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob("../../rendered/*.yaml")
	if len(want) == 0 {
		t.Fatal("no committed manifests")
	}
	for _, p := range want {
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(p)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: rendered differs (%v)", filepath.Base(p), err)
		}
	}
}

func TestRenderFlagsOverrideConfig(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(cfgFile, []byte(`{"shards": 3, "image": "from-file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	args := []string{"render", "--config", cfgFile, "--namespace", "ads", "--image", "reg/tandem:v1"}
	if err := run(context.Background(), args, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if n := strings.Count(s, "kind: StatefulSet"); n != 3 {
		t.Errorf("%d StatefulSets, want the file's 3", n)
	}
	if !strings.Contains(s, "image: reg/tandem:v1") || strings.Contains(s, "from-file") {
		t.Error("--image did not override the file")
	}
	if !strings.Contains(s, "tandem-shard-2.ads.svc.cluster.local") {
		t.Error("--namespace not used in the shard targets")
	}
}

func TestBadInvocations(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"deploy"},
		{"render", "--shards", "0"},
		{"render", "--image", ""},
		{"jobs"},
		{"jobs", "--version", "a/b"},
	} {
		var errOut bytes.Buffer
		if err := run(context.Background(), args, &bytes.Buffer{}, &errOut); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestJobsAndConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"jobs", "--version", "20261208T010203Z"}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "kind: Job\n"); n != 4 {
		t.Errorf("%d Jobs", n)
	}
	out.Reset()
	if err := run(context.Background(), []string{"config"}, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	cfg, err := manifest.DecodeConfig(out.Bytes())
	if err != nil || cfg != manifest.Default() {
		t.Errorf("config does not round-trip: %v", err)
	}
}
