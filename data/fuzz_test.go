package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readAllFrom reads every row of r, checking the Reader contract, and
// returns the error that ended the reading (nil at EOF).
func readAllFrom[T any](t *testing.T, r Reader[T]) error {
	batch := make([]T, 7)
	for {
		n, err := r.Read(batch)
		if n < 0 || n > len(batch) {
			t.Fatalf("Read returned n = %d", n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n == 0 {
			t.Fatal("Read returned 0 rows and no error")
		}
	}
}

// wantNamed fails the test unless err is nil or names the file.
func wantNamed(t *testing.T, err error, name string) {
	if err != nil && !strings.Contains(err.Error(), name+": ") {
		t.Fatalf("error %q does not name %s", err, name)
	}
}

func fuzzJSONL[T any](t *testing.T, content []byte) {
	const name = "fuzz.jsonl"
	r, err := newJSONLReader[T](name, bytes.NewReader(content), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = readAllFrom[T](t, r)
	wantNamed(t, err, name)
	var re *RowError
	if err != nil && !errors.As(err, &re) {
		t.Fatalf("error %q is not a *RowError", err)
	}
}

// FuzzReadJSONL reads arbitrary bytes as a JSONL file of three row types.
// Run it with go test -run XXX -fuzz FuzzReadJSONL -fuzztime 20s ./data.
func FuzzReadJSONL(f *testing.F) {
	for _, seed := range jsonlSeeds(f) {
		f.Add(seed)
	}
	f.Add([]byte(`{"item_id":1,"kind":"ad","category":0,"content_emb":[1,NaN]}`))
	f.Add([]byte("{}\n\n{}"))
	f.Add([]byte(`{"\u00":1}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		fuzzJSONL[Item](t, content)
		fuzzJSONL[Ad](t, content)
		fuzzJSONL[Impression](t, content)
	})
}

func jsonlSeeds(f *testing.F) [][]byte {
	dir := f.TempDir()
	writeTable(f, dir, TableItems, FormatJSONL, sampleItems(3, 1))
	writeTable(f, dir, TableAds, FormatJSONL, sampleAds(3, 1))
	writeTable(f, dir, TableImpressions, FormatJSONL, sampleImpressions(3, 1))
	var seeds [][]byte
	for _, table := range []string{TableItems, TableAds, TableImpressions} {
		b, err := os.ReadFile(filepath.Join(dir, FileName(table, FormatJSONL)))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

func fuzzParquet[T any](t *testing.T, content []byte) {
	const name = "fuzz.parquet"
	r, err := newParquetReader[T](name, bytes.NewReader(content), int64(len(content)), nil)
	if err != nil {
		wantNamed(t, err, name)
		return
	}
	err = readAllFrom[T](t, r)
	wantNamed(t, err, name)
	wantNamed(t, r.Close(), name)
}

// FuzzReadParquet reads arbitrary bytes as a Parquet file of two row types.
// Run it with go test -run XXX -fuzz FuzzReadParquet -fuzztime 20s ./data.
func FuzzReadParquet(f *testing.F) {
	dir := f.TempDir()
	writeTable(f, dir, TableItems, FormatParquet, sampleItems(20, 1))
	writeTable(f, dir, TableAds, FormatParquet, sampleAds(20, 1))
	for _, table := range []string{TableItems, TableAds} {
		b, err := os.ReadFile(filepath.Join(dir, FileName(table, FormatParquet)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		if raceEnabled {
			t.Skip("checkptr under -race makes parquet-go's recoverable panic fatal; fuzz without -race")
		}
		fuzzParquet[Item](t, content)
		fuzzParquet[Ad](t, content)
	})
}

// TestParquetMutations is a small deterministic fuzz run for CI: reading
// randomly corrupted copies of valid files must fail cleanly (or succeed),
// never panic or exhaust memory.
func TestParquetMutations(t *testing.T) {
	if raceEnabled {
		t.Skip("checkptr under -race makes parquet-go's recoverable panic fatal; scripts/test.sh runs this without -race")
	}
	dir := t.TempDir()
	writeTable(t, dir, TableItems, FormatParquet, sampleItems(20, 1))
	writeTable(t, dir, TableAds, FormatParquet, sampleAds(20, 1))
	var seeds [][]byte
	for _, table := range []string{TableItems, TableAds} {
		b, err := os.ReadFile(filepath.Join(dir, FileName(table, FormatParquet)))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	r := newRand(42)
	for range iterations {
		b := append([]byte(nil), seeds[r.IntN(len(seeds))]...)
		for range 1 + r.IntN(4) {
			i := r.IntN(len(b))
			switch r.IntN(4) {
			case 0:
				b[i] ^= 1 << r.IntN(8)
			case 1:
				b[i] = byte(r.IntN(256))
			case 2:
				b[i] = []byte{0, 0x7f, 0x80, 0xff}[r.IntN(4)]
			case 3:
				if i+4 <= len(b) {
					binary.LittleEndian.PutUint32(b[i:], []uint32{0x7fffffff, 0xffffffff, 0x80000000, 1 << 20}[r.IntN(4)])
				}
			}
		}
		fuzzParquet[Item](t, b)
		fuzzParquet[Ad](t, b)
	}
}
