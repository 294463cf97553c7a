package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/tandemml/tandem/internal/atomicfile"
)

// Key prefixes of a version's Badger directory.
const (
	keyManifest  = "m"
	prefixAd     = "a" // + 8-byte big-endian id
	prefixItem   = "i" // + 8-byte big-endian id
	prefixBlob   = "b" // + name + 0 + 4-byte big-endian chunk number
	chunkSize    = 1 << 20
	currentName  = "CURRENT"
	previousName = "PREVIOUS" // the version CURRENT named before the last Flip
)

// Manifest describes a version. Sums holds the SHA-256 of every table
// ("ads", "items") and blob, computed over its keys and values in key
// order; Counts the rows or bytes of each.
type Manifest struct {
	Version      string    `json:"version"`
	Created      time.Time `json:"created"`
	ModelVersion string    `json:"model_version"`
	SchemaHash   string    `json:"schema_hash"`
	Tasks        []string  `json:"tasks"`
	Routes       []string  `json:"routes"` // order of Ad.Vectors
	// Routing maps (surface, product) to a route, first match wins, "*"
	// matching anything: the model version's map, which serving follows.
	Routing []Rule `json:"routing"`
	OutDim  int    `json:"out_dim"`
	// Shards lists the shard counts S whose per-shard indexes the version
	// holds (ShardBlob); empty: only the whole-route indexes.
	Shards []int             `json:"shards,omitempty"`
	Extra  json.RawMessage   `json:"extra,omitempty"` // the writer's own details (e.g. index parameters, check results)
	Sums   map[string]string `json:"sums"`
	Counts map[string]int64  `json:"counts"`
}

// Rule is one entry of a routing map.
type Rule struct {
	Surface string `json:"surface"`
	Product string `json:"product"`
	Route   string `json:"route"`
}

// RouteFor returns the route of (surface, product) under rules, "" when
// none matches.
func RouteFor(rules []Rule, surface, product string) string {
	for _, r := range rules {
		if (r.Surface == "*" || r.Surface == surface) && (r.Product == "*" || r.Product == product) {
			return r.Route
		}
	}
	return ""
}

// RouteBlob names a blob of a route's whole index: kind "index" (an
// encoded index.Graph), "ids" (the ad id of each node, little-endian
// int64) or "user.safetensors" (the route's L1 user tower).
func RouteBlob(route, kind string) string { return "route/" + route + "/" + kind }

// ShardBlob names a blob of shard s of S of a route's index (kind "index"
// or "ids", encoded as RouteBlob's): the nodes are the route's ads that
// package shard places on shard s, in the whole index's node order.
func ShardBlob(route string, shards, s int, kind string) string {
	return fmt.Sprintf("route/%s/shards/%d/%d/%s", route, shards, s, kind)
}

// Writer writes one new version. Close it with Finish (or Abort).
type Writer struct {
	dir string
	db  *badger.DB
	wb  *badger.WriteBatch
}

// Create makes DBDIR/<version>/ (which must not exist) and opens it for
// writing.
func Create(dbdir, version string) (*Writer, error) {
	if err := checkName(version); err != nil {
		return nil, err
	}
	dir := filepath.Join(dbdir, version)
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("snapshot: %s already exists", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s: %w", dir, err)
	}
	return &Writer{dir: dir, db: db, wb: db.NewWriteBatch()}, nil
}

func checkName(v string) error {
	if v == "" || v == currentName || strings.ContainsAny(v, `/\`) || strings.HasPrefix(v, ".") {
		return fmt.Errorf("snapshot: bad version name %q", v)
	}
	return nil
}

func idKey(prefix string, id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), uint64(id))
}

// PutAd adds an ad.
func (w *Writer) PutAd(a *Ad) error {
	return w.wb.Set(idKey(prefixAd, a.ID), appendAd(nil, a))
}

// PutItem adds an item's content vector.
func (w *Writer) PutItem(id int64, content []float32) error {
	return w.wb.Set(idKey(prefixItem, id), appendFloats(nil, content))
}

// PutBlob stores b under name, in 1 MiB chunks.
func (w *Writer) PutBlob(name string, b []byte) error {
	if strings.IndexByte(name, 0) >= 0 || name == "" {
		return fmt.Errorf("snapshot: bad blob name %q", name)
	}
	for i := 0; i == 0 || i*chunkSize < len(b); i++ {
		part := b[i*chunkSize : min((i+1)*chunkSize, len(b))]
		if err := w.wb.Set(blobKey(name, i), slices.Clone(part)); err != nil {
			return err
		}
	}
	return nil
}

func blobKey(name string, chunk int) []byte {
	k := append([]byte(prefixBlob+name), 0)
	return binary.BigEndian.AppendUint32(k, uint32(chunk))
}

// Finish flushes, computes the sums, writes the manifest last and closes
// the directory. The version is complete once Finish returns nil.
func (w *Writer) Finish(m Manifest) error {
	if err := w.wb.Flush(); err != nil {
		w.db.Close()
		return fmt.Errorf("snapshot: write %s: %w", w.dir, err)
	}
	sums, counts, err := summarize(w.db)
	if err != nil {
		w.db.Close()
		return err
	}
	m.Version = filepath.Base(w.dir)
	m.Sums, m.Counts = sums, counts
	b, err := json.Marshal(m)
	if err != nil {
		w.db.Close()
		return err
	}
	if err := w.db.Update(func(tx *badger.Txn) error { return tx.Set([]byte(keyManifest), b) }); err != nil {
		w.db.Close()
		return err
	}
	if err := w.db.Sync(); err != nil {
		w.db.Close()
		return err
	}
	return w.db.Close()
}

// Abort closes the writer and deletes the unfinished version.
func (w *Writer) Abort() error {
	w.wb.Cancel()
	w.db.Close()
	return os.RemoveAll(w.dir)
}

// summarize hashes every table and blob in key order.
func summarize(db *badger.DB) (map[string]string, map[string]int64, error) {
	sums, counts := map[string]string{}, map[string]int64{}
	err := db.View(func(tx *badger.Txn) error {
		it := tx.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		var cur string
		h := sha256.New()
		flush := func() {
			if cur != "" {
				sums[cur] = hex.EncodeToString(h.Sum(nil))
			}
			h.Reset()
		}
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			name, ok := tableOf(k)
			if !ok {
				continue
			}
			if name != cur {
				flush()
				cur = name
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var n [8]byte
			binary.LittleEndian.PutUint64(n[:], uint64(len(k)))
			h.Write(n[:])
			h.Write(k)
			binary.LittleEndian.PutUint64(n[:], uint64(len(v)))
			h.Write(n[:])
			h.Write(v)
			if strings.HasPrefix(name, "blob:") {
				counts[name] += int64(len(v))
			} else {
				counts[name]++
			}
		}
		flush()
		return nil
	})
	return sums, counts, err
}

// tableOf names the table or blob a key belongs to.
func tableOf(k []byte) (string, bool) {
	switch {
	case len(k) == 9 && k[0] == prefixAd[0]:
		return "ads", true
	case len(k) == 9 && k[0] == prefixItem[0]:
		return "items", true
	case len(k) > 5 && k[0] == prefixBlob[0]:
		if i := slices.Index(k, 0); i > 0 {
			return "blob:" + string(k[1:i]), true
		}
	}
	return "", false
}

// Snapshot is an open, verified version (read-only).
type Snapshot struct {
	Dir      string
	Manifest Manifest
	db       *badger.DB
}

// Open opens DBDIR/<version>/ read-only and verifies it against its
// manifest: a missing manifest (an unfinished write) or a sum that does not
// match is an error naming the directory and the table.
func Open(dbdir, version string) (*Snapshot, error) {
	if err := checkName(version); err != nil {
		return nil, err
	}
	dir := filepath.Join(dbdir, version)
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return nil, fmt.Errorf("snapshot: %s is not a complete version: %w", dir, err)
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithReadOnly(true))
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s: %w", dir, err)
	}
	s := &Snapshot{Dir: dir, db: db}
	if err := s.verify(); err != nil {
		db.Close()
		return nil, fmt.Errorf("snapshot: %s: %w", dir, err)
	}
	return s, nil
}

func (s *Snapshot) verify() error {
	var raw []byte
	err := s.db.View(func(tx *badger.Txn) error {
		it, err := tx.Get([]byte(keyManifest))
		if err != nil {
			return err
		}
		raw, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return errors.New("no manifest: the version was not finished")
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &s.Manifest); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	sums, counts, err := summarize(s.db)
	if err != nil {
		return err
	}
	for name, want := range s.Manifest.Sums {
		if sums[name] != want {
			return fmt.Errorf("%s: checksum %.12s, the manifest says %.12s (corrupt)", name, sums[name], want)
		}
		if counts[name] != s.Manifest.Counts[name] {
			return fmt.Errorf("%s: %d entries, the manifest says %d", name, counts[name], s.Manifest.Counts[name])
		}
	}
	for name := range sums {
		if _, ok := s.Manifest.Sums[name]; !ok {
			return fmt.Errorf("%s: not in the manifest", name)
		}
	}
	return nil
}

// Close releases the directory.
func (s *Snapshot) Close() error { return s.db.Close() }

// Blob returns a stored blob.
func (s *Snapshot) Blob(name string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *badger.Txn) error {
		prefix := append([]byte(prefixBlob+name), 0)
		it := tx.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if err := it.Item().Value(func(v []byte) error { out = append(out, v...); return nil }); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("snapshot: %s: no blob %q", s.Dir, name)
		}
		return nil
	})
	return out, err
}

// Ads calls f for every ad in id order, decoding each into the same Ad
// (f must copy what it keeps).
func (s *Snapshot) Ads(f func(a *Ad) error) error {
	return s.db.View(func(tx *badger.Txn) error {
		it := tx.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixAd), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			id := int64(binary.BigEndian.Uint64(k[1:]))
			var a Ad
			err := it.Item().Value(func(v []byte) error {
				var err error
				a, err = decodeAd(id, v)
				return err
			})
			if err != nil {
				return fmt.Errorf("snapshot: %s: %w", s.Dir, err)
			}
			if err := f(&a); err != nil {
				return err
			}
		}
		return nil
	})
}

// Items calls f for every item in id order.
func (s *Snapshot) Items(f func(id int64, content []float32) error) error {
	return s.db.View(func(tx *badger.Txn) error {
		it := tx.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixItem), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := int64(binary.BigEndian.Uint64(it.Item().Key()[1:]))
			var v []float32
			err := it.Item().Value(func(b []byte) error {
				var err error
				v, err = decodeFloats(b)
				return err
			})
			if err != nil {
				return fmt.Errorf("snapshot: %s: item %d: %w", s.Dir, id, err)
			}
			if err := f(id, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Current returns the live version's name ("" when there is none).
func Current(dbdir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dbdir, currentName))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if err := checkName(v); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dbdir, currentName), err)
	}
	return v, nil
}

// Flip verifies version and makes it live: DBDIR/CURRENT is replaced
// atomically and durably, and the version it named before is recorded in
// DBDIR/PREVIOUS as the rollback target. A version that does not verify is
// refused and nothing changes.
func Flip(dbdir, version string) error {
	if err := verifyVersion(dbdir, version); err != nil {
		return err
	}
	cur, err := Current(dbdir)
	if err != nil {
		return err
	}
	if cur != "" && cur != version {
		// PREVIOUS first: a crash between the two writes leaves PREVIOUS equal
		// to CURRENT, a harmless rollback target.
		if err := writeName(dbdir, previousName, cur); err != nil {
			return err
		}
	}
	return writeName(dbdir, currentName, version)
}

func verifyVersion(dbdir, version string) error {
	s, err := Open(dbdir, version)
	if err != nil {
		return err
	}
	return s.Close()
}

func writeName(dbdir, file, version string) error {
	return atomicfile.Write(filepath.Join(dbdir, file), func(w io.Writer) error {
		_, err := io.WriteString(w, version+"\n")
		return err
	})
}

// Info is one version directory as List sees it.
type Info struct {
	Version  string
	Live     bool
	Complete bool   // has a manifest (not verified: List does not read tables)
	Problem  string // why it is not complete
}

// List returns every version directory, oldest first (names sort by time
// when they are timestamps, as the refresh job's are).
func List(dbdir string) ([]Info, error) {
	cur, err := Current(dbdir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dbdir)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		in := Info{Version: e.Name(), Live: e.Name() == cur}
		if _, err := os.Stat(filepath.Join(dbdir, e.Name(), "MANIFEST")); err != nil {
			in.Problem = "not a Badger directory"
		} else if ok, err := hasManifest(filepath.Join(dbdir, e.Name())); err != nil {
			in.Problem = err.Error()
		} else if !ok {
			in.Problem = "unfinished (no manifest)"
		} else {
			in.Complete = true
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Version, b.Version) })
	return out, nil
}

// hasManifest reports whether a version directory holds its manifest; it
// opens it read-only, which a running server's own read-only handle does
// not prevent.
func hasManifest(dir string) (bool, error) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithReadOnly(true))
	if err != nil {
		return false, err
	}
	defer db.Close()
	ok := false
	err = db.View(func(tx *badger.Txn) error {
		_, err := tx.Get([]byte(keyManifest))
		ok = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	return ok, err
}

// Previous returns the rollback target: the version that was live before
// the last Flip, when its directory is still complete ("" otherwise).
func Previous(dbdir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dbdir, previousName))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if checkName(v) != nil {
		return "", fmt.Errorf("%s: bad version name %q", filepath.Join(dbdir, previousName), v)
	}
	cur, err := Current(dbdir)
	if err != nil || v == cur {
		return "", err
	}
	if ok, err := hasManifest(filepath.Join(dbdir, v)); err != nil || !ok {
		return "", nil
	}
	return v, nil
}

// Rollback makes to live (the rollback target when to is ""), after
// verifying it. It clears the rollback target: a second rollback needs an
// explicit version.
func Rollback(dbdir, to string) (string, error) {
	if to == "" {
		p, err := Previous(dbdir)
		if err != nil {
			return "", err
		}
		if p == "" {
			return "", fmt.Errorf("snapshot: %s has no version before the live one", dbdir)
		}
		to = p
	}
	if err := verifyVersion(dbdir, to); err != nil {
		return "", err
	}
	if err := writeName(dbdir, currentName, to); err != nil {
		return "", err
	}
	if err := os.Remove(filepath.Join(dbdir, previousName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return to, nil
}

// GC deletes every version directory except the live one, the rollback
// target and keep (a version being written now), returning what it
// removed.
func GC(dbdir, keep string) ([]string, error) {
	cur, err := Current(dbdir)
	if err != nil {
		return nil, err
	}
	prev, err := Previous(dbdir)
	if err != nil {
		return nil, err
	}
	vs, err := List(dbdir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range vs {
		if v.Version == cur || v.Version == prev || v.Version == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dbdir, v.Version)); err != nil {
			return removed, err
		}
		removed = append(removed, v.Version)
	}
	return removed, nil
}
