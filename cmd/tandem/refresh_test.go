package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/internal/fixture"
	"github.com/tandemml/tandem/refresh"
	"github.com/tandemml/tandem/snapshot"
)

// TestRefreshAndIndexRejectBadInput: missing flags are usage errors, a
// missing directory an error naming it; nothing panics.
func TestRefreshAndIndexRejectBadInput(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"refresh"}, 2, "-data, -model and -db are required"},
		{[]string{"refresh", "-data", missing, "-model", missing, "-db", t.TempDir()}, 1, "missing"},
		{[]string{"index"}, 2, "usage: tandem index ls|rollback"},
		{[]string{"index", "drop", "-db", missing}, 2, "usage: tandem index ls|rollback"},
		{[]string{"index", "ls"}, 2, "-db is required"},
		{[]string{"index", "ls", "-db", missing}, 1, "missing"},
		{[]string{"index", "rollback", "-db", t.TempDir()}, 1, "no version before the live one"},
	} {
		code, out, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out+stderr, c.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", c.args, code, c.code, c.want, out, stderr)
		}
	}
}

// TestRefreshTasks runs the job as its three tasks, as Indexed Jobs would:
// two embed parts (the second by $JOB_COMPLETION_INDEX), one whole-route
// build and publish, over a store directory; publish makes its version
// live.
func TestRefreshTasks(t *testing.T) {
	dir := t.TempDir()
	w, err := fixture.Build(context.Background(), dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "artifacts")
	common := []string{"-data", w.Data, "-model", w.Models, "-store", st, "-threads", "2"}
	t.Setenv(refresh.JobIndexEnv, "")
	code, out, stderr := runCLI(t, append([]string{"refresh", "build"}, common...)...)
	if code != 1 || !strings.Contains(stderr, "--shard is not given and JOB_COMPLETION_INDEX is not set") {
		t.Fatalf("build with no shard: exit %d: %s%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, append([]string{"refresh", "embed", "-part", "0", "-parts", "2", "-device", "cpu"}, common...)...)
	if code != 0 || !strings.Contains(out, "wrote embed/0-of-2") {
		t.Fatalf("embed part 0: exit %d: %s%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, append([]string{"refresh", "build"}, append(common, "-shard", "0")...)...)
	if code != 1 || !strings.Contains(stderr, "embed/1-of-2") {
		t.Fatalf("build without part 1: exit %d: %s%s", code, out, stderr)
	}
	t.Setenv(refresh.JobIndexEnv, "1")
	if code, out, stderr = runCLI(t, append([]string{"refresh", "embed", "-parts", "2", "-device", "cpu"}, common...)...); code != 0 || !strings.Contains(out, "wrote embed/1-of-2") {
		t.Fatalf("embed part 1 from the environment: exit %d: %s%s", code, out, stderr)
	}
	t.Setenv(refresh.JobIndexEnv, "0")
	if code, out, stderr = runCLI(t, append([]string{"refresh", "build"}, common...)...); code != 0 || !strings.Contains(out, "wrote index/all/0-of-1") {
		t.Fatalf("build: exit %d: %s%s", code, out, stderr)
	}
	if code, _, stderr = runCLI(t, append([]string{"refresh", "publish"}, common...)...); code != 2 || !strings.Contains(stderr, "-db are required") {
		t.Fatalf("publish without -db: exit %d: %s", code, stderr)
	}
	js := filepath.Join(dir, "report.json")
	code, out, stderr = runCLI(t, append([]string{"refresh", "publish", "-db", w.DB, "-version", "v2", "-json", js}, common...)...)
	if code != 0 {
		t.Fatalf("publish: exit %d: %s%s", code, out, stderr)
	}
	if cur, _ := snapshot.Current(w.DB); cur != "v2" {
		t.Fatalf("CURRENT is %q after publish", cur)
	}
	var rep refresh.Report
	if b, err := os.ReadFile(js); err != nil || json.Unmarshal(b, &rep) != nil || rep.Version != "v2" || len(rep.Routes) != 1 {
		t.Fatalf("report %+v: %v", rep, err)
	}
}
