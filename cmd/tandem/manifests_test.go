package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestManifestsUseRealFlags: every container in deploy/k8s's rendered
// manifests and example Jobs that runs tandem passes flags tandem
// defines. Each command line is parsed by the real subcommand with -h
// appended: an unknown flag fails before -h is reached, a known one
// ends in the help text without running anything.
func TestManifestsUseRealFlags(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/k8s/rendered/*.yaml")
	jobs, _ := filepath.Glob("../../deploy/k8s/manifest/testdata/*.yaml")
	files = append(files, jobs...)
	if len(files) == 0 {
		t.Skip("no deploy/k8s manifests in this checkout")
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, c := range containers(doc) {
				cmd, _ := c["command"].([]any)
				if len(cmd) != 1 || cmd[0] != "tandem" {
					continue
				}
				var args []string
				for _, a := range c["args"].([]any) {
					args = append(args, a.(string))
				}
				code, _, stderr := runCLI(t, append(args, "-h")...)
				if code != 0 || strings.Contains(stderr, "not defined") {
					t.Errorf("%s: %s %v: exit %d\n%s", filepath.Base(f), doc["kind"], args, code, firstLines(stderr, 3))
				}
				n++
			}
		}
	}
	if n < 6 {
		t.Fatalf("checked %d tandem containers; want serve shard, serve root and the four refresh steps", n)
	}
	t.Logf("%d tandem command lines parse", n)
}

// containers digs the containers out of a workload, job or cron job.
func containers(doc map[string]any) []map[string]any {
	spec := dig(doc, "spec")
	if tmpl := dig(spec, "jobTemplate"); tmpl != nil {
		spec = dig(tmpl, "spec")
	}
	pod := dig(dig(spec, "template"), "spec")
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := pod[key].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func dig(m map[string]any, key string) map[string]any {
	if m == nil {
		return nil
	}
	v, _ := m[key].(map[string]any)
	return v
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
