package store

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob/fileblob"
)

// testContract runs the same checks on any store.
func testContract(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Get(ctx, "embed/0-of-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing name: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "embed/0-of-2"); err != nil {
		t.Fatalf("delete of a missing name: %v", err)
	}
	objs := map[string][]byte{
		"embed/0-of-2":     []byte("first"),
		"embed/1-of-2":     {},
		"index/all/0-of-1": bytes.Repeat([]byte{0, 1, 2, 255}, 300_000),
		"indexer":          []byte("not under index/"),
	}
	for n, b := range objs {
		if err := s.Put(ctx, n, b); err != nil {
			t.Fatal(err)
		}
	}
	for n, b := range objs {
		got, err := s.Get(ctx, n)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("get %s: %d bytes, %v; want %d", n, len(got), err, len(b))
		}
	}
	if err := s.Put(ctx, "embed/0-of-2", []byte("rerun")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "embed/0-of-2"); string(got) != "rerun" {
		t.Fatalf("after overwrite: %q", got)
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"embed/", []string{"embed/0-of-2", "embed/1-of-2"}},
		{"index/", []string{"index/all/0-of-1"}},
		{"index", []string{"index/all/0-of-1", "indexer"}},
		{"", []string{"embed/0-of-2", "embed/1-of-2", "index/all/0-of-1", "indexer"}},
		{"nothing/", nil},
	} {
		got, err := s.List(ctx, c.prefix)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("list %q: %v, %v; want %v", c.prefix, got, err, c.want)
		}
	}
	if err := s.Delete(ctx, "embed/1-of-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "embed/1-of-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "../up", "dir/", ".hidden", "a/.tmp"} {
		if err := s.Put(ctx, bad, nil); err == nil {
			t.Errorf("put %q was accepted", bad)
		}
	}
}

func TestDirContract(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testContract(t, s)
}

func TestFileURLContract(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*Dir); !ok {
		t.Fatalf("file:// opened a %T, want *Dir", s)
	}
	testContract(t, s)
	// A temporary file of a write in flight is not an object.
	if err := os.WriteFile(filepath.Join(dir, "embed", ".0-of-2.tmp-123"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(context.Background(), "embed/"); !slices.Equal(got, []string{"embed/0-of-2"}) {
		t.Fatalf("list with a temporary file: %v", got)
	}
}

func TestMemBucketContract(t *testing.T) {
	s, err := Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testContract(t, s)
}

func TestFileBucketContract(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewBucket(b, "fileblob")
	defer s.Close()
	testContract(t, s)
}

// TestS3Contract runs the contract against an S3-compatible server on
// loopback (gofakes3, in memory), opened by URL through gocloud's s3blob.
func TestS3Contract(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("artifacts"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}}
	for _, prefix := range []string{"", "runs/r1/"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			q := maps.Clone(q)
			if prefix != "" {
				q.Set("prefix", prefix)
			}
			s, err := Open(context.Background(), "s3://artifacts?"+q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			testContract(t, s)
		})
	}
	// A prefixed store sees only its own objects.
	s, err := Open(context.Background(), "s3://artifacts?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.List(context.Background(), "runs/r1/embed/"); !slices.Equal(got, []string{"runs/r1/embed/0-of-2"}) {
		t.Fatalf("the prefixed run's objects from the root: %v", got)
	}
}
