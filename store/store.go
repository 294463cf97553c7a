package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/memblob" // mem://
	_ "gocloud.dev/blob/s3blob"  // s3://
	"gocloud.dev/gcerrors"

	"github.com/tandemml/tandem/internal/atomicfile"
)

// ErrNotFound is wrapped by Get when no object has the name.
var ErrNotFound = errors.New("store: not found")

// Store holds named objects.
type Store interface {
	// Put replaces the object name with b atomically.
	Put(ctx context.Context, name string, b []byte) error
	// Get returns the object name, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// List returns the names that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes the object name; a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// Close releases the store.
	Close() error
}

var (
	_ Store = (*Dir)(nil)
	_ Store = (*Bucket)(nil)
)

// Open opens the store at u: a plain path or file:// URL is a local
// directory (created if missing), any other scheme a gocloud.dev bucket
// (s3://, mem://).
func Open(ctx context.Context, u string) (Store, error) {
	if u == "" {
		return nil, errors.New("store: empty URL")
	}
	if !strings.Contains(u, "://") {
		return NewDir(u)
	}
	p, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("store: parse %q: %w", u, err)
	}
	if p.Scheme == "file" {
		if p.Host != "" && p.Host != "localhost" {
			return nil, fmt.Errorf("store: %q: a file URL names a local path (file:///path)", u)
		}
		return NewDir(filepath.FromSlash(p.Path))
	}
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", redact(p), err)
	}
	return &Bucket{b: b, url: redact(p)}, nil
}

// redact drops the query, which may name credentials files or roles, from
// a URL shown in errors.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.User = nil
	return c.String()
}

// checkName refuses names that are not clean relative slash paths.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || path.Clean(name) != name ||
		name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
		return fmt.Errorf("store: bad object name %q", name)
	}
	for _, e := range strings.Split(name, "/") {
		if strings.HasPrefix(e, ".") {
			return fmt.Errorf("store: bad object name %q: an element starts with a dot", name)
		}
	}
	return nil
}

// Dir is a store in a local directory: an object is the file at its name.
type Dir struct {
	root string
}

// NewDir opens (and creates) the directory root as a store.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Dir{root: root}, nil
}

// Put writes a temporary file beside the target, syncs it and renames it
// over the target (internal/atomicfile).
func (d *Dir) Put(ctx context.Context, name string, b []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := filepath.Join(d.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("store: put %s: %w", name, err)
	}
	if err := atomicfile.Write(p, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return fmt.Errorf("store: put %s: %w", name, err)
	}
	return nil
}

// Get reads the file.
func (d *Dir) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: get %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", name, err)
	}
	return b, nil
}

// List walks the directory; temporary files of writes in flight (their
// names start with a dot) are not objects.
func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == d.root {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if e.IsDir() {
			// Skip subtrees that cannot hold a match.
			if !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", prefix, err)
	}
	slices.Sort(out)
	return out, nil
}

// Delete removes the file.
func (d *Dir) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(d.root, filepath.FromSlash(name))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete %s: %w", name, err)
	}
	return nil
}

// Close does nothing.
func (d *Dir) Close() error { return nil }

// Bucket is a store on a gocloud.dev bucket.
type Bucket struct {
	b   *blob.Bucket
	url string
}

// NewBucket wraps an open bucket (which Close closes).
func NewBucket(b *blob.Bucket, name string) *Bucket { return &Bucket{b: b, url: name} }

// Put writes the object; the bucket commits it when the writer closes
// without error, so a killed Put leaves the object as it was.
func (s *Bucket) Put(ctx context.Context, name string, b []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.b.WriteAll(ctx, name, b, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("store: put %s in %s: %w", name, s.url, err)
	}
	return nil
}

// Get reads the object.
func (s *Bucket) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	b, err := s.b.ReadAll(ctx, name)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("store: get %s in %s: %w", name, s.url, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s in %s: %w", name, s.url, err)
	}
	return b, nil
}

// List lists the keys under prefix.
func (s *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	it := s.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("store: list %s in %s: %w", prefix, s.url, err)
		}
		if !o.IsDir {
			out = append(out, o.Key)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Delete removes the object.
func (s *Bucket) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.b.Delete(ctx, name); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("store: delete %s in %s: %w", name, s.url, err)
	}
	return nil
}

// Close closes the bucket.
func (s *Bucket) Close() error { return s.b.Close() }
