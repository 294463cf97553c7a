package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemml/tandem/config"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: tandem"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"simulate"}, 2, "-out is required"},
		{[]string{"simulate", "--out", "x", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"simulate", "--out", "x", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"eval", "--data", "x"}, 2, "need -data DIR and -oracle"},
		{[]string{"help"}, 0, "commands:"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("tandem %v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

func TestSimulateRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "simulate", "--out", dir, "--format", "csv")
	if code != 1 || !strings.Contains(stderr, "csv") {
		t.Errorf("bad format: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "simulate", "--out", dir, "--scale", "huge")
	if code != 1 || !strings.Contains(stderr, `unknown scale "huge"`) {
		t.Errorf("bad scale: exit %d, %q", code, stderr)
	}
	bad := strings.Replace(string(config.DefaultYAML()), "length: 32", "length: -1", 1)
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte(bad), 0o644)
	code, _, stderr = runCLI(t, "simulate", "--out", dir, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "sequence.length") || !strings.Contains(stderr, "bad.yaml") {
		t.Errorf("bad config: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "eval", "--oracle", "--data", filepath.Join(dir, "nothing"))
	if code != 1 || !strings.Contains(stderr, "manifest") {
		t.Errorf("eval of a missing dir: exit %d, %q", code, stderr)
	}
}

func TestSimulateThenOracle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out, stderr := runCLI(t, "simulate", "--out", dir, "--scale", "tiny", "--seed", "5", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "impressions") || !strings.Contains(stderr, "100%") {
		t.Errorf("simulate output:\n%s\n%s", out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "impressions.jsonl")); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(t.TempDir(), "oracle.json")
	code, out, stderr = runCLI(t, "eval", "--oracle", "--data", dir, "--json", js)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "bayes LL") || !strings.Contains(out, "related") {
		t.Errorf("eval output:\n%s", out)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Slices []struct {
			Surface string  `json:"surface"`
			Bayes   float64 `json:"bayes_log_loss"`
		} `json:"slices"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Slices) == 0 || rep.Slices[0].Bayes <= 0 {
		t.Errorf("oracle JSON: %v %+v", err, rep)
	}
}

func TestImportMovieLens(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"movies.csv": "movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,Heat (1995),Action|Crime\n",
		"tags.csv":   "userId,movieId,tag,timestamp\n1,1,fun,60\n",
	}
	ratings := "userId,movieId,rating,timestamp\n"
	for i := range 20 {
		ratings += fmt.Sprintf("%d,%d,%d.0,%d\n", i%4+1, i%2+1, i%5+1, 100+i)
	}
	files["ratings.csv"] = ratings
	for name, body := range files {
		os.WriteFile(filepath.Join(src, name), []byte(body), 0o644)
	}
	out := filepath.Join(t.TempDir(), "ml")
	code, stdout, stderr := runCLI(t, "import", "movielens", "--src", src, "--out", out)
	if code != 0 || !strings.Contains(stdout, "events") {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	os.WriteFile(filepath.Join(src, "ratings.csv"), []byte("userId,movieId,rating,timestamp\n1,99,4.0,10\n"), 0o644)
	code, _, stderr = runCLI(t, "import", "movielens", "--src", src, "--out", out)
	if code != 1 || !strings.Contains(stderr, "ratings.csv") {
		t.Errorf("unknown movie: exit %d, %q", code, stderr)
	}
	if code, _, _ := runCLI(t, "import", "imdb"); code != 2 {
		t.Errorf("unknown source: exit %d, want 2", code)
	}
}

func TestValidate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, "simulate", "--out", dir, "--scale", "tiny", "--users", "20"); code != 0 {
		t.Fatalf("simulate: %s", stderr)
	}
	code, out, stderr := runCLI(t, "validate", "--data", dir, "--skip-candidates")
	if code != 0 || !strings.Contains(out, "is valid against the schema of its manifest's config") {
		t.Fatalf("validate: exit %d\n%s\n%s", code, out, stderr)
	}
	other := strings.Replace(string(config.DefaultYAML()), "dim: 32}\n  ad:", "dim: 16}\n  ad:", 1)
	cfg := filepath.Join(t.TempDir(), "narrow.yaml")
	os.WriteFile(cfg, []byte(other), 0o644)
	code, _, stderr = runCLI(t, "validate", "--data", dir, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, `users.parquet: row 0: column "pretrained_emb"`) {
		t.Errorf("validate against a narrower schema: exit %d, %q", code, stderr)
	}
}
