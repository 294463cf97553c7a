package manifest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed rendered/ files and testdata/ goldens")

// renderedDir holds the committed manifests of Default().
const renderedDir = "../rendered"

// goldenVersion is the version of the committed example Jobs.
const goldenVersion = "20261208T010203Z"

func jobsGolden() string { return filepath.Join("testdata", "jobs-"+goldenVersion+".yaml") }

// renderFiles renders cfg into file name → contents.
func renderFiles(t *testing.T, cfg Config) map[string][]byte {
	t.Helper()
	objs, err := Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range Files(objs) {
		var b bytes.Buffer
		if err := WriteYAML(&b, f.Objects); err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b.Bytes()
	}
	return out
}

func renderJobs(t *testing.T, cfg Config, version string) []byte {
	t.Helper()
	js, err := RefreshJobs(cfg, version)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, j := range js {
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		y, err := MarshalYAML(j)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(y)
	}
	return b.Bytes()
}

// TestRenderedIsCurrent checks that the committed rendered/ files are
// exactly what Default() renders (go test -update rewrites them).
func TestRenderedIsCurrent(t *testing.T) {
	want := renderFiles(t, Default())
	if *update {
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(renderedDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	have, err := filepath.Glob(filepath.Join(renderedDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range have {
		names = append(names, filepath.Base(p))
	}
	var wantNames []string
	for name := range want {
		wantNames = append(wantNames, name)
	}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Fatalf("rendered/ holds %v, Default() renders %v (go test ./manifest -update)", names, wantNames)
	}
	for name, b := range want {
		compareFile(t, filepath.Join(renderedDir, name), b)
	}
}

// TestJobsGolden checks the example Jobs of one version.
func TestJobsGolden(t *testing.T) {
	b := renderJobs(t, Default(), goldenVersion)
	if *update {
		if err := os.WriteFile(jobsGolden(), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compareFile(t, jobsGolden(), b)
}

func compareFile(t *testing.T, path string, want []byte) {
	t.Helper()
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Errorf("%s differs from what is rendered now (go test ./manifest -update):\n%s", path, firstDiff(have, want))
	}
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b []byte) string {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range max(len(al), len(bl)) {
		var x, y []byte
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if !bytes.Equal(x, y) {
			return "line " + strconv.Itoa(i+1) + ":\n  committed: " + string(x) + "\n  rendered:  " + string(y)
		}
	}
	return "(no line differs)"
}
