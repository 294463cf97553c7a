package modeldir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q does not contain %q", what, err, s)
		}
	}
}

// makeVersion creates a version with one L1 route and one L2 surface
// whose files hold tag, and writes its manifest.
func makeVersion(t *testing.T, modelDir, version, tag string) (string, *Manifest) {
	t.Helper()
	dir, err := Create(modelDir, version)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(L1Files("feed_app"), L2File("feed")) {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(f)), f+" "+tag)
	}
	writeFile(t, filepath.Join(dir, BaselineDir("popularity"), "table.json"), "{}")
	l1, err := NewArtifact(dir, "run-"+tag, L1Files("feed_app"))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := NewArtifact(dir, "run-"+tag, []string{L2File("feed")})
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{
		Format:     FormatVersion,
		Version:    version,
		CreatedAt:  "2026-11-23T14:15:00Z",
		RunID:      "run-" + tag,
		Seed:       1<<63 + 5,
		SchemaHash: "abc123",
		Config:     json.RawMessage(`{"dim": 16, "lr": 0.01}`),
		Routing:    []Route{{Surface: "feed", Product: "app", Route: "feed_app"}},
		L1:         map[string]Artifact{"feed_app": l1},
		L2:         map[string]Artifact{"feed": l2},
		Baselines:  map[string]json.RawMessage{"popularity": json.RawMessage(`{"dir":"baselines/popularity"}`)},
		Metrics:    json.RawMessage(`{"auc":0.75}`),
	}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNewVersionName(t *testing.T) {
	loc := time.FixedZone("UTC+2", 2*3600)
	got := NewVersionName(time.Date(2026, 11, 23, 16, 15, 0, 999, loc), "run42")
	if want := "20261123T141500Z-run42"; got != want {
		t.Errorf("NewVersionName = %q, want %q", got, want)
	}
	if err := ValidateVersion(got); err != nil {
		t.Error(err)
	}
}

func TestValidateVersion(t *testing.T) {
	for _, ok := range []string{"v1", "20261123T141500Z-run42", "a.b", "x_y-z"} {
		if err := ValidateVersion(ok); err != nil {
			t.Errorf("ValidateVersion(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "a..b", ".hidden", "a b", "a\nb", "a\x00b", "\xff", strings.Repeat("v", 256)} {
		if err := ValidateVersion(bad); err == nil {
			t.Errorf("ValidateVersion(%q): no error", bad)
		}
	}
}

func TestCreate(t *testing.T) {
	modelDir := filepath.Join(t.TempDir(), "models")
	dir, err := Create(modelDir, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(modelDir, "v1") {
		t.Errorf("Create = %q", dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("version directory: %v", err)
	}
	_, err = Create(modelDir, "v1")
	wantErr(t, "Create twice", err, dir, "already exists")
	_, err = Create(modelDir, "../v2")
	wantErr(t, "Create ../v2", err, modelDir, "../v2")
	if _, err := os.Stat(filepath.Join(filepath.Dir(modelDir), "v2")); err == nil {
		t.Error("Create made a directory outside the model directory")
	}
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "x")
	_, err = Create(file, "v1")
	wantErr(t, "Create under a file", err, file)
}

func TestManifestRoundTrip(t *testing.T) {
	modelDir := t.TempDir()
	dir, in := makeVersion(t, modelDir, "v1", "a")
	out, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []*json.RawMessage{&in.Config, &out.Config, &in.Metrics, &out.Metrics} {
		*raw = json.RawMessage(compact(t, *raw))
	}
	for _, m := range []*Manifest{in, out} {
		for k, v := range m.Baselines {
			m.Baselines[k] = json.RawMessage(compact(t, v))
		}
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("manifest round trip:\n got %+v\nwant %+v", out, in)
	}
	if out.Seed != 1<<63+5 {
		t.Errorf("Seed = %d", out.Seed)
	}

	// The file uses snake_case keys and is indented JSON ending in "\n".
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "version", "created_at", "run_id", "seed", "schema_hash", "config", "routing", "l1", "l2", "baselines", "metrics"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("manifest has no key %q:\n%s", k, b)
		}
	}
	for _, s := range []string{`"sha256": "`, `"files": [`, `"surface": "feed"`, `"product": "app"`, `"route": "feed_app"`} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("manifest does not contain %s:\n%s", s, b)
		}
	}
	if !bytes.HasSuffix(b, []byte("}\n")) {
		t.Error("manifest does not end in a newline")
	}
	if a := out.L1["feed_app"]; a.Version != "run-a-"+a.SHA256[:12] || a.RunID != "run-a" {
		t.Errorf("L1 artifact = %+v", a)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 { // l1, l2_feed..., baselines, manifest
		t.Errorf("version directory holds %d entries, want 4 (no temporary files)", len(ents))
	}
}

func TestHashFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), "alpha")
	writeFile(t, filepath.Join(dir, "sub", "b"), "beta")
	sa, sb := sha256.Sum256([]byte("alpha")), sha256.Sum256([]byte("beta"))
	want := sha256.Sum256(append(sa[:], sb[:]...))
	got, err := HashFiles(dir, []string{"a", "sub/b"})
	if err != nil {
		t.Fatal(err)
	}
	if got != hex.EncodeToString(want[:]) {
		t.Errorf("HashFiles = %s, want %x", got, want)
	}
	rev, err := HashFiles(dir, []string{"sub/b", "a"})
	if err != nil || rev == got {
		t.Errorf("HashFiles in another order = %s, %v; want a different hash", rev, err)
	}
	_, err = HashFiles(dir, []string{"a", "missing"})
	wantErr(t, "missing file", err, filepath.Join(dir, "missing"))
	_, err = HashFiles(dir, nil)
	wantErr(t, "no files", err, dir, "no files")
	for _, bad := range []string{"../a", "/etc/passwd", "sub/../a", "./a", `sub\b`, ""} {
		_, err = HashFiles(dir, []string{bad})
		wantErr(t, "bad path "+bad, err, dir, fmt.Sprintf("%q", bad))
	}
	a, err := NewArtifact(dir, "r7", []string{"a", "sub/b"})
	if err != nil || a.SHA256 != got || a.Version != "r7-"+got[:12] || a.RunID != "r7" || len(a.Files) != 2 {
		t.Errorf("NewArtifact = %+v, %v", a, err)
	}
}

func TestWriteManifestErrors(t *testing.T) {
	modelDir := t.TempDir()
	dir, m := makeVersion(t, modelDir, "v1", "a")
	mp := filepath.Join(dir, ManifestName)
	orig, _ := os.ReadFile(mp)
	mutate := func(f func(m *Manifest)) *Manifest {
		c := *m
		c.L1 = map[string]Artifact{"feed_app": m.L1["feed_app"]}
		f(&c)
		return &c
	}
	tests := []struct {
		name string
		m    *Manifest
		want []string
	}{
		{"nil", nil, []string{"nil manifest"}},
		{"format 0", mutate(func(m *Manifest) { m.Format = 0 }), []string{"format 0, want 1"}},
		{"bad version", mutate(func(m *Manifest) { m.Version = "a/b" }), []string{`"a/b"`}},
		{"local time", mutate(func(m *Manifest) { m.CreatedAt = "2026-11-23T14:15:00+01:00" }), []string{"created_at", "UTC"}},
		{"no time", mutate(func(m *Manifest) { m.CreatedAt = "" }), []string{"created_at"}},
		{"missing file", mutate(func(m *Manifest) {
			a := m.L1["feed_app"]
			a.Files = []string{"l1/feed_app/user.safetensors", "l1/feed_app/nope.safetensors"}
			m.L1["feed_app"] = a
		}), []string{`l1 "feed_app"`, `"l1/feed_app/nope.safetensors"`}},
		{"directory as file", mutate(func(m *Manifest) {
			a := m.L1["feed_app"]
			a.Files = []string{"l1"}
			m.L1["feed_app"] = a
		}), []string{`l1 "feed_app"`, "not a regular file"}},
		{"escaping file", mutate(func(m *Manifest) {
			a := m.L1["feed_app"]
			a.Files = []string{"../v0/x"}
			m.L1["feed_app"] = a
		}), []string{`"../v0/x"`}},
		{"no files", mutate(func(m *Manifest) {
			a := m.L1["feed_app"]
			a.Files = nil
			m.L1["feed_app"] = a
		}), []string{"no files"}},
		{"bad sha", mutate(func(m *Manifest) {
			a := m.L1["feed_app"]
			a.SHA256 = strings.ToUpper(a.SHA256)
			m.L1["feed_app"] = a
		}), []string{"sha256"}},
		{"bad config", mutate(func(m *Manifest) { m.Config = json.RawMessage("{") }), []string{"config"}},
		{"bad metrics", mutate(func(m *Manifest) { m.Metrics = json.RawMessage("nan") }), []string{"metrics"}},
		{"bad baseline", mutate(func(m *Manifest) { m.Baselines = map[string]json.RawMessage{"pop": nil} }), []string{`baseline "pop"`}},
	}
	for _, tc := range tests {
		err := WriteManifest(dir, tc.m)
		wantErr(t, tc.name, err, append(tc.want, mp)...)
	}
	if b, _ := os.ReadFile(mp); !bytes.Equal(b, orig) {
		t.Error("a failed WriteManifest changed the manifest")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("version directory holds %d entries, want 4 (no temporary files)", len(ents))
	}
}

func TestReadManifestErrors(t *testing.T) {
	modelDir := t.TempDir()
	dir, m := makeVersion(t, modelDir, "v1", "a")
	mp := filepath.Join(dir, ManifestName)
	good, _ := os.ReadFile(mp)

	setJSON := func(f func(map[string]any)) string {
		var v map[string]any
		if err := json.Unmarshal(good, &v); err != nil {
			t.Fatal(err)
		}
		f(v)
		b, _ := json.Marshal(v)
		return string(b)
	}
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"not JSON", "{", []string{"unexpected end"}},
		{"array", "[]", []string{"cannot unmarshal"}},
		{"trailing", string(good) + "{}", []string{"invalid character"}},
		{"format 2", setJSON(func(v map[string]any) { v["format"] = 2 }), []string{"format 2, want 1"}},
		{"no format", setJSON(func(v map[string]any) { delete(v, "format") }), []string{"format 0, want 1"}},
		{"seed string", setJSON(func(v map[string]any) { v["seed"] = "7" }), []string{"seed"}},
	}
	for _, tc := range tests {
		writeFile(t, mp, tc.content)
		_, err := ReadManifest(dir)
		wantErr(t, tc.name, err, append(tc.want, mp)...)
	}

	writeFile(t, mp, string(good))
	if _, err := ReadManifest(dir); err != nil {
		t.Fatal(err)
	}
	l2 := m.L2["feed"].Files[0]
	if err := os.Remove(filepath.Join(dir, l2)); err != nil {
		t.Fatal(err)
	}
	_, err := ReadManifest(dir)
	wantErr(t, "deleted L2 file", err, mp, `l2 "feed"`, l2, "no such file")

	if err := os.Remove(mp); err != nil {
		t.Fatal(err)
	}
	_, err = ReadManifest(dir)
	wantErr(t, "no manifest", err, mp)
	_, err = ReadManifest(filepath.Join(modelDir, "nope"))
	wantErr(t, "no version", err, filepath.Join(modelDir, "nope", ManifestName))
}

func TestCurrent(t *testing.T) {
	modelDir := t.TempDir()
	cp := filepath.Join(modelDir, CurrentName)
	_, err := Current(modelDir)
	if !errors.Is(err, ErrNoCurrent) {
		t.Errorf("Current without CURRENT = %v, want ErrNoCurrent", err)
	}
	wantErr(t, "no CURRENT", err, cp)
	_, err = Current(filepath.Join(modelDir, "missing"))
	if !errors.Is(err, ErrNoCurrent) {
		t.Errorf("Current of a missing directory = %v, want ErrNoCurrent", err)
	}

	for content, want := range map[string]string{
		"v1\n":                 "v1",
		"v1":                   "v1",
		"  v2 \r\n\n":          "v2",
		"20261123T141500Z-r\n": "20261123T141500Z-r",
	} {
		writeFile(t, cp, content)
		if got, err := Current(modelDir); err != nil || got != want {
			t.Errorf("Current with CURRENT %q = %q, %v; want %q", content, got, err, want)
		}
	}
	for _, content := range []string{"", "\n", "   ", "../x\n", "..\n", "a/b\n", `a\b`, "/abs\n", "v1\nv2\n", "a b\n", ".tmp\n", "\x00\n", strings.Repeat("v", 5000)} {
		writeFile(t, cp, content)
		_, err := Current(modelDir)
		wantErr(t, fmt.Sprintf("CURRENT %.20q", content), err, cp)
		if errors.Is(err, ErrNoCurrent) {
			t.Errorf("CURRENT %q: error wraps ErrNoCurrent", content)
		}
	}

	// CURRENT that is a directory.
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cp, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Current(modelDir)
	wantErr(t, "CURRENT is a directory", err, cp)
}

func TestPublish(t *testing.T) {
	modelDir := t.TempDir()
	makeVersion(t, modelDir, "v1", "a")
	makeVersion(t, modelDir, "v2", "b")
	if err := Publish(modelDir, "v1"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(modelDir, CurrentName))
	if err != nil || string(b) != "v1\n" {
		t.Errorf("CURRENT = %q, %v; want %q", b, err, "v1\n")
	}
	if err := Publish(modelDir, "v2"); err != nil {
		t.Fatal(err)
	}
	if v, err := Current(modelDir); err != nil || v != "v2" {
		t.Errorf("Current = %q, %v; want v2", v, err)
	}
	vdir, m, err := LoadCurrent(modelDir)
	if err != nil || vdir != filepath.Join(modelDir, "v2") || m.RunID != "run-b" {
		t.Errorf("LoadCurrent = %q, %+v, %v", vdir, m, err)
	}

	// Versions that cannot be published leave CURRENT alone.
	err = Publish(modelDir, "v3")
	wantErr(t, "missing version", err, filepath.Join(modelDir, "v3", ManifestName))
	if _, err := Create(modelDir, "v4"); err != nil {
		t.Fatal(err)
	}
	err = Publish(modelDir, "v4")
	wantErr(t, "no manifest", err, filepath.Join(modelDir, "v4", ManifestName))
	err = Publish(modelDir, "../v1")
	wantErr(t, "bad name", err, "../v1")
	dir5, m5 := makeVersion(t, modelDir, "v5", "c")
	m5.Version = "v1"
	if err := WriteManifest(dir5, m5); err != nil {
		t.Fatal(err)
	}
	err = Publish(modelDir, "v5")
	wantErr(t, "version mismatch", err, filepath.Join(dir5, ManifestName), `"v1"`)
	dir6, m6 := makeVersion(t, modelDir, "v6", "d")
	if err := os.Remove(filepath.Join(dir6, m6.L1["feed_app"].Files[1])); err != nil {
		t.Fatal(err)
	}
	err = Publish(modelDir, "v6")
	wantErr(t, "missing L1 file", err, filepath.Join(dir6, ManifestName), m6.L1["feed_app"].Files[1])
	if v, err := Current(modelDir); err != nil || v != "v2" {
		t.Errorf("after failed publishes, Current = %q, %v; want v2", v, err)
	}

	// No temporary files are left in the model directory.
	ents, _ := os.ReadDir(modelDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("model directory holds %q", e.Name())
		}
	}

	// LoadCurrent checks the manifest names the version.
	writeFile(t, filepath.Join(modelDir, CurrentName), "v5\n")
	_, _, err = LoadCurrent(modelDir)
	wantErr(t, "LoadCurrent mismatch", err, filepath.Join(dir5, ManifestName), `"v1"`)
	_, _, err = LoadCurrent(t.TempDir())
	if !errors.Is(err, ErrNoCurrent) {
		t.Errorf("LoadCurrent without CURRENT = %v", err)
	}
}

// TestConcurrentReaders publishes 50 versions while readers loop on
// Current: every read must give a published version, in order.
func TestConcurrentReaders(t *testing.T) {
	modelDir := t.TempDir()
	const n = 50
	names := make([]string, n)
	index := map[string]int{}
	for i := range names {
		names[i] = fmt.Sprintf("v%02d", i)
		index[names[i]] = i
		dir, err := Create(modelDir, names[i])
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "w"), names[i])
		a, err := NewArtifact(dir, "r", []string{"w"})
		if err != nil {
			t.Fatal(err)
		}
		m := &Manifest{Format: FormatVersion, Version: names[i], CreatedAt: "2026-01-02T03:04:05Z", L2: map[string]Artifact{"s": a}}
		if err := WriteManifest(dir, m); err != nil {
			t.Fatal(err)
		}
	}

	var done atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for !done.Load() {
				v, err := Current(modelDir)
				reads.Add(1)
				if errors.Is(err, ErrNoCurrent) && last == -1 {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				i, ok := index[v]
				if !ok || i < last {
					errs <- fmt.Errorf("read %q after %d", v, last)
					return
				}
				last = i
			}
		}()
	}
	for _, name := range names {
		if err := Publish(modelDir, name); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v, err := Current(modelDir); err != nil || v != names[n-1] {
		t.Errorf("Current = %q, %v", v, err)
	}
	t.Logf("%d reads", reads.Load())
}

func TestCopyFromCurrent(t *testing.T) {
	modelDir := t.TempDir()
	_, m1 := makeVersion(t, modelDir, "v1", "a")
	dir2, err := Create(modelDir, "v2")
	if err != nil {
		t.Fatal(err)
	}
	l1 := m1.L1["feed_app"].Files
	err = CopyFromCurrent(modelDir, dir2, l1)
	if !errors.Is(err, ErrNoCurrent) {
		t.Errorf("CopyFromCurrent without CURRENT = %v, want ErrNoCurrent", err)
	}
	if err := Publish(modelDir, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := CopyFromCurrent(modelDir, dir2, l1); err != nil {
		t.Fatal(err)
	}
	for _, f := range l1 {
		b, err := os.ReadFile(filepath.Join(dir2, filepath.FromSlash(f)))
		if err != nil || string(b) != f+" a" {
			t.Errorf("copied %s = %q, %v", f, b, err)
		}
	}
	// The copies hash the same, so the artifact can be reused as is.
	if sum, err := HashFiles(dir2, l1); err != nil || sum != m1.L1["feed_app"].SHA256 {
		t.Errorf("copied L1 hash = %s, %v; want %s", sum, err, m1.L1["feed_app"].SHA256)
	}
	if err := CopyFromCurrent(modelDir, dir2, nil); err != nil {
		t.Errorf("copying nothing: %v", err)
	}

	err = CopyFromCurrent(modelDir, dir2, l1[:1])
	wantErr(t, "destination exists", err, filepath.Join(dir2, filepath.FromSlash(l1[0])))
	if b, _ := os.ReadFile(filepath.Join(dir2, filepath.FromSlash(l1[0]))); string(b) != l1[0]+" a" {
		t.Errorf("failed copy changed the existing file to %q", b)
	}
	err = CopyFromCurrent(modelDir, dir2, []string{L2File("search")})
	wantErr(t, "missing source", err, filepath.Join(modelDir, "v1", L2File("search")), "v1")
	if _, err := os.Stat(filepath.Join(dir2, L2File("search"))); err == nil {
		t.Error("failed copy left a destination file")
	}
	err = CopyFromCurrent(modelDir, dir2, []string{L2File("feed"), "../v1/manifest.json"})
	wantErr(t, "escaping path", err, `"../v1/manifest.json"`)
	if _, err := os.Stat(filepath.Join(dir2, L2File("feed"))); err == nil {
		t.Error("a bad file list copied some files")
	}
	err = CopyFromCurrent(modelDir, dir2, []string{"l1"})
	wantErr(t, "directory source", err, "not a regular file")
	missing := filepath.Join(modelDir, "v9")
	err = CopyFromCurrent(modelDir, missing, []string{L2File("feed")})
	wantErr(t, "missing destination", err, missing)

	// Bad CURRENT.
	writeFile(t, filepath.Join(modelDir, CurrentName), "../etc\n")
	err = CopyFromCurrent(modelDir, dir2, []string{L2File("feed")})
	wantErr(t, "bad CURRENT", err, filepath.Join(modelDir, CurrentName))
}

func TestPathHelpers(t *testing.T) {
	if got := L1Files("feed_app"); !reflect.DeepEqual(got, []string{"l1/feed_app/user.safetensors", "l1/feed_app/ad.safetensors"}) {
		t.Errorf("L1Files = %q", got)
	}
	if got := L2File("feed"); got != "l2_feed.safetensors" {
		t.Errorf("L2File = %q", got)
	}
	if got := BaselineDir("pop"); got != "baselines/pop" {
		t.Errorf("BaselineDir = %q", got)
	}
}
