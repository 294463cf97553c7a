package snapshot

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

func testAd(i int) *Ad {
	return &Ad{ID: int64(1000 + i), ItemID: int64(5000 + i), Product: uint8(i % 2), Eligible: 0b101, Active: i%3 != 0,
		Bid: float32(i) / 7, Cats: []int32{int32(i), 3, -1 + int32(i%2)}, Dense: []float32{1.5, float32(i)},
		Vectors: []float32{float32(i), -2, 0.25, 8}}
}

// write makes a complete version with n ads and items and two blobs (one
// over a chunk).
func write(t *testing.T, dbdir, version string, n int) map[string][]byte {
	t.Helper()
	w, err := Create(dbdir, version)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.PutAd(testAd(i)); err != nil {
			t.Fatal(err)
		}
		if err := w.PutItem(int64(5000+i), []float32{float32(i), 1}); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, chunkSize*2+17)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	blobs := map[string][]byte{"route/all/index": big, "route/all/user": []byte("user tower bytes")}
	for k, v := range blobs {
		if err := w.PutBlob(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(Manifest{ModelVersion: "m1", Tasks: []string{"click"}, Routes: []string{"all"}, OutDim: 4}); err != nil {
		t.Fatal(err)
	}
	return blobs
}

func TestWriteFlipOpenRoundTrip(t *testing.T) {
	dbdir := t.TempDir()
	blobs := write(t, dbdir, "v1", 300)
	if err := Flip(dbdir, "v1"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := Current(dbdir); cur != "v1" {
		t.Fatalf("CURRENT is %q", cur)
	}
	s, err := Open(dbdir, "v1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Manifest.Counts["ads"] != 300 || s.Manifest.Counts["items"] != 300 || s.Manifest.ModelVersion != "m1" {
		t.Fatalf("manifest %+v", s.Manifest)
	}
	i := 0
	err = s.Ads(func(a *Ad) error {
		if want := testAd(i); !reflect.DeepEqual(a, want) {
			t.Fatalf("ad %d: %+v, wrote %+v", i, a, want)
		}
		i++
		return nil
	})
	if err != nil || i != 300 {
		t.Fatalf("%d ads, %v", i, err)
	}
	n := 0
	if err := s.Items(func(id int64, v []float32) error { n++; return nil }); err != nil || n != 300 {
		t.Fatalf("%d items, %v", n, err)
	}
	for k, v := range blobs {
		got, err := s.Blob(k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("blob %s: %d bytes, %v", k, len(got), err)
		}
	}
	if _, err := s.Blob("absent"); err == nil {
		t.Fatal("an absent blob was found")
	}
	// A second read-only handle (a server and `tandem index ls` at once).
	s2, err := Open(dbdir, "v1")
	if err != nil {
		t.Fatalf("second read-only open: %v", err)
	}
	s2.Close()
}

// TestUnfinishedVersionNeverLive: a version whose writer died before
// Finish has no manifest; it does not open and Flip refuses it.
func TestUnfinishedVersionNeverLive(t *testing.T) {
	dbdir := t.TempDir()
	write(t, dbdir, "v1", 10)
	if err := Flip(dbdir, "v1"); err != nil {
		t.Fatal(err)
	}
	w, err := Create(dbdir, "v2")
	if err != nil {
		t.Fatal(err)
	}
	w.PutAd(testAd(1))
	w.wb.Flush()
	w.db.Close() // the process dies here
	if _, err := Open(dbdir, "v2"); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Fatalf("an unfinished version opened: %v", err)
	}
	if err := Flip(dbdir, "v2"); err == nil {
		t.Fatal("Flip accepted an unfinished version")
	}
	if cur, _ := Current(dbdir); cur != "v1" {
		t.Fatalf("CURRENT is %q after a refused flip", cur)
	}
	vs, err := List(dbdir)
	if err != nil || len(vs) != 2 || !vs[0].Live || vs[1].Complete {
		t.Fatalf("List: %+v, %v", vs, err)
	}
}

// TestCorruptVersionRefused: a changed value (checksum mismatch) or
// damaged files are errors naming the directory, never a panic.
func TestCorruptVersionRefused(t *testing.T) {
	dbdir := t.TempDir()
	write(t, dbdir, "v1", 50)
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dbdir, "v1")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	bad := testAd(7)
	bad.Bid = 99
	if err := db.Update(func(tx *badger.Txn) error { return tx.Set(idKey(prefixAd, bad.ID), appendAd(nil, bad)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(dbdir, "v1"); err == nil || !strings.Contains(err.Error(), "ads: checksum") {
		t.Fatalf("a changed ad was not detected: %v", err)
	}
	if err := Flip(dbdir, "v1"); err == nil {
		t.Fatal("Flip accepted a corrupt version")
	}

	write(t, dbdir, "v2", 50)
	files, _ := filepath.Glob(filepath.Join(dbdir, "v2", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 64 {
			continue
		}
		for i := 20; i < len(b); i += 97 {
			b[i] ^= 0x5a
		}
		os.WriteFile(f, b, 0o644)
	}
	if _, err := Open(dbdir, "v2"); err == nil {
		t.Fatal("a version with damaged files opened")
	}
}

func TestRollbackAndGC(t *testing.T) {
	dbdir := t.TempDir()
	for _, v := range []string{"v1", "v2", "v3"} {
		write(t, dbdir, v, 5)
		if err := Flip(dbdir, v); err != nil {
			t.Fatal(err)
		}
	}
	w, err := Create(dbdir, "v4") // unfinished
	if err != nil {
		t.Fatal(err)
	}
	w.db.Close()
	if p, _ := Previous(dbdir); p != "v2" {
		t.Fatalf("previous is %q, want v2", p)
	}
	removed, err := GC(dbdir, "")
	if err != nil || !reflect.DeepEqual(removed, []string{"v1", "v4"}) {
		t.Fatalf("GC removed %v, %v", removed, err)
	}
	to, err := Rollback(dbdir, "")
	if err != nil || to != "v2" {
		t.Fatalf("rollback to %q, %v", to, err)
	}
	if cur, _ := Current(dbdir); cur != "v2" {
		t.Fatalf("CURRENT is %q", cur)
	}
	if _, err := Rollback(dbdir, ""); err == nil {
		t.Fatal("rolled back past the oldest version")
	}
	if _, err := Create(dbdir, "../x"); err == nil {
		t.Fatal("a version name with a slash was accepted")
	}
	if _, err := Create(dbdir, "v2"); err == nil {
		t.Fatal("an existing version was overwritten")
	}
}

func FuzzDecodeAd(f *testing.F) {
	f.Add(appendAd(nil, testAd(3)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAd(1, b)
		if err != nil {
			return
		}
		if !bytes.Equal(appendAd(nil, &a), b) {
			t.Fatalf("decoded %+v does not re-encode to the input", a)
		}
	})
}

// TestNeverLiveIsNotRollbackTarget: a version a killed job finished but
// never flipped is not the rollback target, and GC removes it.
func TestNeverLiveIsNotRollbackTarget(t *testing.T) {
	dbdir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		write(t, dbdir, v, 3)
		if err := Flip(dbdir, v); err != nil {
			t.Fatal(err)
		}
	}
	write(t, dbdir, "v3", 3) // finished, the process died before Flip
	if p, _ := Previous(dbdir); p != "v1" {
		t.Fatalf("previous is %q, want v1", p)
	}
	if removed, err := GC(dbdir, ""); err != nil || len(removed) != 1 || removed[0] != "v3" {
		t.Fatalf("GC removed %v, %v", removed, err)
	}
}
