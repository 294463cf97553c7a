package modeldir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandemml/tandem/internal/atomicfile"
)

const (
	// FormatVersion is the manifest format this package writes and reads.
	FormatVersion = 1
	// ManifestName is the manifest's file name in a version directory.
	ManifestName = "manifest.json"
	// CurrentName is the name of the file in the model directory that
	// names the live version.
	CurrentName = "CURRENT"
	// maxCurrentSize bounds how much of CURRENT is read.
	maxCurrentSize = 4096
)

// ErrNoCurrent is returned, wrapped, by [Current] and the functions that
// use it when the model directory has no CURRENT file, that is when no
// version has been published yet.
var ErrNoCurrent = errors.New("no version published (CURRENT does not exist)")

// Manifest describes one version: how it was trained and which files it
// holds.
type Manifest struct {
	Format     int                        `json:"format"`     // FormatVersion
	Version    string                     `json:"version"`    // the version directory's name
	CreatedAt  string                     `json:"created_at"` // RFC 3339, UTC
	RunID      string                     `json:"run_id"`
	Seed       uint64                     `json:"seed"`
	SchemaHash string                     `json:"schema_hash"`
	Config     json.RawMessage            `json:"config,omitempty"`
	Routing    []Route                    `json:"routing"`
	L1         map[string]Artifact        `json:"l1"` // by route
	L2         map[string]Artifact        `json:"l2"` // by surface
	Baselines  map[string]json.RawMessage `json:"baselines,omitempty"`
	Metrics    json.RawMessage            `json:"metrics,omitempty"`
}

// Route maps a surface and product to an L1 route.
type Route struct {
	Surface string `json:"surface"`
	Product string `json:"product"`
	Route   string `json:"route"`
}

// Artifact is a model made of one or more files of a version.
type Artifact struct {
	// Files are slash-separated paths relative to the version directory.
	Files []string `json:"files"`
	// SHA256 is the hex hash of Files, see [HashFiles].
	SHA256 string `json:"sha256"`
	// RunID is the training run that produced the files; it differs from
	// the manifest's RunID when the files were copied from an earlier
	// version.
	RunID string `json:"run_id"`
	// Version identifies the model; for L1 it is RunID, "-" and the first
	// 12 hex digits of SHA256 (see [NewArtifact]).
	Version string `json:"version"`
}

// L1Files returns the files of an L1 route's two towers, relative to the
// version directory.
func L1Files(route string) []string {
	return []string{"l1/" + route + "/user.safetensors", "l1/" + route + "/ad.safetensors"}
}

// L2File returns the file of a surface's L2 model, relative to the
// version directory.
func L2File(surface string) string { return "l2_" + surface + ".safetensors" }

// BaselineDir returns the directory of a baseline, relative to the version
// directory.
func BaselineDir(name string) string { return "baselines/" + name }

// NewVersionName returns the name of a version created at t by run runID,
// such as 20261123T141500Z-run42: the UTC time to the second, "-" and the
// run ID. Names of one run sort in time order.
func NewVersionName(t time.Time, runID string) string {
	return t.UTC().Format("20060102T150405Z") + "-" + runID
}

// ValidateVersion returns an error if name cannot be a version name: it
// must be non-empty valid UTF-8 of at most 255 bytes, with no path
// separator, no "..", no space or control character, and must not start
// with a dot.
func ValidateVersion(name string) error {
	switch {
	case name == "":
		return errors.New("empty version name")
	case len(name) > 255:
		return fmt.Errorf("version name %.20q... is longer than 255 bytes", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("version name %q is not valid UTF-8", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("version name %q contains a path separator", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("version name %q contains %q", name, "..")
	case name[0] == '.':
		return fmt.Errorf("version name %q starts with a dot", name)
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("version name %q contains a space or control character", name)
	}
	return nil
}

// checkRel returns an error if p is not a clean, slash-separated path
// inside a version directory.
func checkRel(p string) error {
	if p == "" || p == "." || strings.Contains(p, `\`) || path.IsAbs(p) || path.Clean(p) != p ||
		!filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("file %q is not a clean relative path inside the version directory", p)
	}
	return nil
}

// Create makes the directory of a new version in modelDir, creating
// modelDir if needed, and returns its path. It is an error if the version
// exists.
func Create(modelDir, version string) (dir string, err error) {
	if err := ValidateVersion(version); err != nil {
		return "", fmt.Errorf("modeldir: %s: %w", modelDir, err)
	}
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return "", fmt.Errorf("modeldir: %w", err)
	}
	dir = filepath.Join(modelDir, version)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("modeldir: %s: version already exists", dir)
		}
		return "", fmt.Errorf("modeldir: %w", err)
	}
	return dir, nil
}

// HashFiles returns the hex SHA-256 of the concatenated binary SHA-256
// digests of files, in order, which are slash-separated paths relative to
// versionDir.
func HashFiles(versionDir string, files []string) (string, error) {
	if len(files) == 0 {
		return "", fmt.Errorf("modeldir: %s: no files to hash", versionDir)
	}
	all := sha256.New()
	for _, f := range files {
		if err := checkRel(f); err != nil {
			return "", fmt.Errorf("modeldir: %s: %w", versionDir, err)
		}
		sum, err := hashFile(filepath.Join(versionDir, filepath.FromSlash(f)))
		if err != nil {
			return "", fmt.Errorf("modeldir: %w", err)
		}
		all.Write(sum)
	}
	return hex.EncodeToString(all.Sum(nil)), nil
}

func hashFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return h.Sum(nil), nil
}

// NewArtifact hashes files, relative to versionDir, and returns their
// Artifact with Version set to runID, "-" and the first 12 hex digits of
// the hash.
func NewArtifact(versionDir, runID string, files []string) (Artifact, error) {
	sum, err := HashFiles(versionDir, files)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{
		Files:   append([]string(nil), files...),
		SHA256:  sum,
		RunID:   runID,
		Version: runID + "-" + sum[:12],
	}, nil
}

// validate checks m and that the files it lists exist in versionDir.
func (m *Manifest) validate(versionDir string) error {
	if m.Format != FormatVersion {
		return fmt.Errorf("format %d, want %d", m.Format, FormatVersion)
	}
	if err := ValidateVersion(m.Version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if t, err := time.Parse(time.RFC3339, m.CreatedAt); err != nil || !strings.HasSuffix(m.CreatedAt, "Z") {
		return fmt.Errorf("created_at %q is not an RFC 3339 UTC time", m.CreatedAt)
	} else if t.IsZero() {
		return fmt.Errorf("created_at %q is the zero time", m.CreatedAt)
	}
	for name, raw := range map[string]json.RawMessage{"config": m.Config, "metrics": m.Metrics} {
		if len(raw) > 0 && !json.Valid(raw) {
			return fmt.Errorf("%s is not valid JSON", name)
		}
	}
	for name, raw := range m.Baselines {
		if !json.Valid(raw) {
			return fmt.Errorf("baseline %q is not valid JSON", name)
		}
	}
	for _, kind := range []struct {
		name string
		arts map[string]Artifact
	}{{"l1", m.L1}, {"l2", m.L2}} {
		for key, a := range kind.arts {
			if err := a.validate(versionDir); err != nil {
				return fmt.Errorf("%s %q: %w", kind.name, key, err)
			}
		}
	}
	return nil
}

func (a *Artifact) validate(versionDir string) error {
	if len(a.Files) == 0 {
		return errors.New("no files")
	}
	if len(a.SHA256) != 64 || strings.ToLower(a.SHA256) != a.SHA256 {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", a.SHA256)
	}
	if _, err := hex.DecodeString(a.SHA256); err != nil {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", a.SHA256)
	}
	for _, f := range a.Files {
		if err := checkRel(f); err != nil {
			return err
		}
		p := filepath.Join(versionDir, filepath.FromSlash(f))
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("file %q: %w", f, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("file %q: %s is not a regular file", f, p)
		}
	}
	return nil
}

// WriteManifest writes m as versionDir's manifest, atomically. m must be
// valid: Format is FormatVersion, Version a valid name, CreatedAt an
// RFC 3339 UTC time, and every artifact has a well-formed SHA256 and files
// that exist in versionDir.
func WriteManifest(versionDir string, m *Manifest) error {
	p := filepath.Join(versionDir, ManifestName)
	if m == nil {
		return fmt.Errorf("modeldir: %s: nil manifest", p)
	}
	if err := m.validate(versionDir); err != nil {
		return fmt.Errorf("modeldir: %s: %w", p, err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("modeldir: %s: %w", p, err)
	}
	if err := writeAtomic(p, append(b, '\n')); err != nil {
		return fmt.Errorf("modeldir: %s: %w", p, err)
	}
	return nil
}

// ReadManifest reads and validates versionDir's manifest: its format must
// be FormatVersion and every file it lists must exist.
func ReadManifest(versionDir string) (*Manifest, error) {
	m, err := readManifest(versionDir)
	if err != nil {
		return nil, fmt.Errorf("modeldir: %w", err)
	}
	return m, nil
}

func readManifest(versionDir string) (*Manifest, error) {
	p := filepath.Join(versionDir, ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := new(Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := m.validate(versionDir); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

// Current returns the name of the live version of modelDir, read from
// its CURRENT file. The error wraps [ErrNoCurrent] when there is none.
func Current(modelDir string) (version string, err error) {
	p := filepath.Join(modelDir, CurrentName)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("modeldir: %s: %w", p, ErrNoCurrent)
	}
	if err != nil {
		return "", fmt.Errorf("modeldir: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCurrentSize+1))
	if err != nil {
		return "", fmt.Errorf("modeldir: %s: %w", p, err)
	}
	if len(b) > maxCurrentSize {
		return "", fmt.Errorf("modeldir: %s: larger than %d bytes", p, maxCurrentSize)
	}
	version = strings.TrimSpace(string(b))
	if err := ValidateVersion(version); err != nil {
		return "", fmt.Errorf("modeldir: %s: %w", p, err)
	}
	return version, nil
}

// LoadCurrent returns the directory and manifest of modelDir's live
// version. The error wraps [ErrNoCurrent] when there is none.
func LoadCurrent(modelDir string) (versionDir string, m *Manifest, err error) {
	version, err := Current(modelDir)
	if err != nil {
		return "", nil, err
	}
	versionDir = filepath.Join(modelDir, version)
	if m, err = ReadManifest(versionDir); err != nil {
		return "", nil, err
	}
	if m.Version != version {
		return "", nil, fmt.Errorf("modeldir: %s names version %q, CURRENT names %q", filepath.Join(versionDir, ManifestName), m.Version, version)
	}
	return versionDir, m, nil
}

// Publish makes version the live version of modelDir. The version's
// manifest must be readable and valid (see [ReadManifest]) and name the
// version. Publish syncs every file and directory of the version, then
// replaces CURRENT atomically and syncs modelDir.
func Publish(modelDir, version string) error {
	if err := ValidateVersion(version); err != nil {
		return fmt.Errorf("modeldir: %s: publish: %w", modelDir, err)
	}
	dir := filepath.Join(modelDir, version)
	m, err := readManifest(dir)
	if err != nil {
		return fmt.Errorf("modeldir: publish %s: %w", version, err)
	}
	if m.Version != version {
		return fmt.Errorf("modeldir: publish %s: %s names version %q", version, filepath.Join(dir, ManifestName), m.Version)
	}
	if err := syncTree(dir); err != nil {
		return fmt.Errorf("modeldir: publish %s: %w", version, err)
	}
	p := filepath.Join(modelDir, CurrentName)
	if err := writeAtomic(p, []byte(version+"\n")); err != nil {
		return fmt.Errorf("modeldir: %s: %w", p, err)
	}
	return nil
}

// syncTree syncs every regular file and directory under dir, and dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		return syncPath(p)
	})
}

func syncPath(p string) error {
	if err := atomicfile.Sync(p); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// CopyFromCurrent copies files, slash-separated paths relative to a
// version directory, from modelDir's live version into toVersionDir,
// creating subdirectories as needed. It is used when a run trains only
// some of the models. toVersionDir must exist and must not hold the
// files yet; the copies are synced.
func CopyFromCurrent(modelDir, toVersionDir string, files []string) error {
	version, err := Current(modelDir)
	if err != nil {
		return err
	}
	fromDir := filepath.Join(modelDir, version)
	for _, f := range files {
		if err := checkRel(f); err != nil {
			return fmt.Errorf("modeldir: copy from %s: %w", fromDir, err)
		}
	}
	if st, err := os.Stat(toVersionDir); err != nil {
		return fmt.Errorf("modeldir: %w", err)
	} else if !st.IsDir() {
		return fmt.Errorf("modeldir: %s is not a directory", toVersionDir)
	}
	for _, f := range files {
		rel := filepath.FromSlash(f)
		if err := copyFile(filepath.Join(fromDir, rel), filepath.Join(toVersionDir, rel)); err != nil {
			return fmt.Errorf("modeldir: copy %s from version %s: %w", f, version, err)
		}
	}
	return nil
}

// copyFile copies the regular file src to dst, which must not exist.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil {
		return err
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%s: %w", dst, cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("%s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("%s: %w", dst, err)
	}
	return nil
}

// writeAtomic replaces p with b (see package atomicfile).
func writeAtomic(p string, b []byte) error {
	return atomicfile.Write(p, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
