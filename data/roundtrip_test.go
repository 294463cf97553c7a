package data

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// roundTrip writes rows in each format, reads them back with ReadAll and
// ForEach and compares, then checks that writing again gives the same bytes.
func roundTrip[T any](t *testing.T, table string, rows []T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			writeTable(t, dir, table, f, rows)
			got, err := ReadAll[T](dir, table)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffRows(rows, got); d != "" {
				t.Fatalf("ReadAll: %s", d)
			}

			var streamed []T
			err = ForEach(dir, table, 77, func(batch []T) error {
				if len(batch) > 77 {
					t.Errorf("batch of %d rows", len(batch))
				}
				for _, row := range batch {
					streamed = append(streamed, deepCopy(row))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if d := diffRows(rows, streamed); d != "" {
				t.Fatalf("ForEach: %s", d)
			}

			path := filepath.Join(dir, FileName(table, f))
			first, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dir2 := t.TempDir()
			writeTable(t, dir2, table, f, rows)
			second, err := os.ReadFile(filepath.Join(dir2, FileName(table, f)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Fatalf("rewriting gave different bytes (%d vs %d bytes)", len(first), len(second))
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("dir holds %d entries, want just the table file", len(entries))
			}
		})
	}
}

// deepCopy copies a row's slices, since ForEach reuses them.
func deepCopy[T any](row T) T {
	v := reflect.ValueOf(&row).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice && !f.IsNil() {
			c := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
			reflect.Copy(c, f)
			f.Set(c)
		}
	}
	return row
}

func TestRoundTrip(t *testing.T) {
	const n = 2500
	t.Run(TableItems, func(t *testing.T) { roundTrip(t, TableItems, sampleItems(n, 1)) })
	t.Run(TableAds, func(t *testing.T) { roundTrip(t, TableAds, sampleAds(n, 2)) })
	t.Run(TableUsers, func(t *testing.T) { roundTrip(t, TableUsers, sampleUsers(n, 3)) })
	t.Run(TableEvents, func(t *testing.T) { roundTrip(t, TableEvents, sampleEvents(n, 4)) })
	t.Run(TableRequests, func(t *testing.T) { roundTrip(t, TableRequests, sampleRequests(n, 5)) })
	t.Run(TableImpressions, func(t *testing.T) { roundTrip(t, TableImpressions, sampleImpressions(n, 6)) })
	t.Run(TableCandidates, func(t *testing.T) { roundTrip(t, TableCandidates, sampleCandidates(n, 7)) })
}

func TestRoundTripEmpty(t *testing.T) {
	roundTrip(t, TableItems, []Item{})
}

// TestSampleRowsPass guards the test data: every sample row passes Check.
func TestSampleRowsPass(t *testing.T) {
	check := func(name string, rows any) {
		v := reflect.ValueOf(rows)
		for i := range v.Len() {
			if err := v.Index(i).Addr().Interface().(checkable).Check(); err != nil {
				t.Errorf("%s[%d]: %v", name, i, err)
			}
		}
	}
	check("items", sampleItems(100, 1))
	check("ads", sampleAds(100, 1))
	check("users", sampleUsers(100, 1))
	check("events", sampleEvents(100, 1))
	check("requests", sampleRequests(100, 1))
	check("impressions", sampleImpressions(100, 1))
	check("candidates", sampleCandidates(100, 1))
}

// TestColumnNames checks that the parquet and json tags of every table name
// the same columns in the same order.
func TestColumnNames(t *testing.T) {
	for _, row := range []any{Item{}, Ad{}, User{}, Event{}, Request{}, Impression{}, Candidate{}} {
		typ := reflect.TypeOf(row)
		var pq, js []string
		for _, f := range parquet.SchemaOf(row).Fields() {
			pq = append(pq, f.Name())
		}
		c, err := newJSONCodec(typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range c.fields {
			js = append(js, f.name)
		}
		if !reflect.DeepEqual(pq, js) {
			t.Errorf("%v: parquet columns %v, json keys %v", typ, pq, js)
		}
	}
}

func TestMultipleRowGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 300k rows")
	}
	rows := sampleCandidates(rowGroupRows*2+1000, 8)
	dir := t.TempDir()
	writeTable(t, dir, TableCandidates, FormatParquet, rows)
	f, err := os.Open(filepath.Join(dir, FileName(TableCandidates, FormatParquet)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	pf, err := parquet.OpenFile(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(pf.RowGroups()); got != 3 {
		t.Errorf("%d row groups, want 3", got)
	}
	got, err := ReadAll[Candidate](dir, TableCandidates)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRows(rows, got); d != "" {
		t.Fatal(d)
	}
}

func TestJSONLFormat(t *testing.T) {
	dir := t.TempDir()
	rows := []Request{{RequestID: 1, UserID: 2, TsMs: 3, Surface: "search", ViewType: "a<b", QueryTopic: -1, ContextItemID: -1}}
	writeTable(t, dir, TableRequests, FormatJSONL, rows)
	b, err := os.ReadFile(filepath.Join(dir, "requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"request_id":1,"user_id":2,"ts_ms":3,"surface":"search","view_type":"a<b","query_topic":-1,"context_item_id":-1}` + "\n"
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	items := []Item{{ItemID: 1, Kind: KindAd, ContentEmb: []float32{1e-7, 1e21, 0.1, -0}}}
	writeTable(t, dir, TableItems, FormatJSONL, items)
	b, _ = os.ReadFile(filepath.Join(dir, "items.jsonl"))
	want = `{"item_id":1,"kind":"ad","category":0,"content_emb":[1e-7,1e+21,0.1,0]}` + "\n"
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestJSONLLenientWhitespace(t *testing.T) {
	dir := t.TempDir()
	content := " { \"item_id\" : 1 , \"kind\":\"ad\",\"category\":2,\"content_emb\":[ 1 , 2.5 ] } \r\n" +
		`{"content_emb":[],"category":0,"kind":"organic","item_id":2}` + "\n\n  \n"
	if err := os.WriteFile(filepath.Join(dir, "items.jsonl"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll[Item](dir, TableItems)
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{{ItemID: 1, Kind: KindAd, Category: 2, ContentEmb: []float32{1, 2.5}}, {ItemID: 2, Kind: KindOrganic}}
	if d := diffRows(want, got); d != "" {
		t.Fatal(d)
	}
}

func TestJSONLLongLine(t *testing.T) {
	dir := t.TempDir()
	emb := make([]float32, 3<<20) // ~17 MiB of JSON on one line
	for i := range emb {
		emb[i] = 0.123
	}
	rows := []Item{{ItemID: 1, Kind: KindAd, ContentEmb: emb}, {ItemID: 2, Kind: KindAd, ContentEmb: []float32{1}}}
	writeTable(t, dir, TableItems, FormatJSONL, rows)
	info, _ := os.Stat(filepath.Join(dir, "items.jsonl"))
	if info.Size() < 16<<20 {
		t.Fatalf("line of %d bytes, want > 16 MiB", info.Size())
	}
	got, err := ReadAll[Item](dir, TableItems)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRows(rows, got); d != "" {
		t.Fatal(d)
	}
}

func TestReaderContract(t *testing.T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			rows := sampleEvents(10, 1)
			writeTable(t, dir, TableEvents, f, rows)
			r, err := Open[Event](dir, TableEvents)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got []Event
			batch := make([]Event, 4)
			for {
				n, err := r.Read(batch)
				got = append(got, batch[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					t.Fatal("n == 0 with nil error")
				}
			}
			if d := diffRows(rows, got); d != "" {
				t.Fatal(d)
			}
			if n, err := r.Read(batch); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF = %d, %v", n, err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Read(batch); err == nil || err == io.EOF {
				t.Errorf("Read after Close = %v, want an error", err)
			}
			if err := r.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestWriterAbortAndFailure(t *testing.T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			w, err := Create[Item](dir, TableItems, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(sampleItems(10, 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, FileName(TableItems, f)+".tmp")); err != nil {
				t.Errorf("no temporary file while writing: %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err == nil {
				t.Error("Close after Abort succeeded")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("dir holds %v after Abort", entries)
			}
			// Close then Abort: the file stays.
			writeTable(t, dir, TableItems, f, sampleItems(3, 1))
			if _, err := os.Stat(filepath.Join(dir, FileName(TableItems, f))); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A failed JSONL write (NaN) leaves no file, even after Close.
	dir := t.TempDir()
	w, err := Create[User](dir, TableUsers, FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	rows := sampleUsers(5, 1)
	rows[4].PretrainedEmb[2] = float32(nan())
	err = w.Write(rows)
	wantError(t, err, ErrBadValue, "users.jsonl", 4, "pretrained_emb", "NaN cannot be written as JSON at index 2")
	if err := w.Close(); err == nil {
		t.Error("Close after a failed Write succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("dir holds %v after a failed write", entries)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open[Item](dir, TableItems)
	if !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), `"items"`) || !strings.Contains(err.Error(), dir) {
		t.Errorf("no file: %v", err)
	}
	writeTable(t, dir, TableItems, FormatJSONL, sampleItems(2, 1))
	if _, err := Create[Item](dir, TableItems, FormatParquet); err == nil || !strings.Contains(err.Error(), "items.jsonl exists") {
		t.Errorf("Create beside the other format: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "items.parquet"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open[Item](dir, TableItems)
	if !errors.Is(err, ErrAmbiguousTable) || !strings.Contains(err.Error(), `"items"`) || !strings.Contains(err.Error(), dir) {
		t.Errorf("both files: %v", err)
	}
	if _, err := OpenFile[Item](filepath.Join(dir, "items.csv")); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("OpenFile .csv: %v", err)
	}
	if _, err := Create[Item](dir, "../x", FormatJSONL); err == nil {
		t.Error("Create with a path as table name succeeded")
	}
	if _, err := Create[Item](dir, "x", Format("csv")); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Create csv: %v", err)
	}
	if _, err := Open[int](t.TempDir(), "x"); err == nil {
		t.Error("Open[int] succeeded")
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"parquet", "jsonl"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("csv"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("ParseFormat(csv) = %v", err)
	}
}

func TestRowErrorMessage(t *testing.T) {
	cases := []struct {
		err  *RowError
		want string
	}{
		{&RowError{File: "items.parquet", Row: 17, Column: "content_emb", Err: errorOf(ErrBadValue, "NaN at index 3")},
			`data: items.parquet: row 17: column "content_emb": NaN at index 3`},
		{&RowError{File: "items.parquet", Row: -1, Column: "x", Err: ErrUnknownColumn}, `data: items.parquet: column "x": unknown column`},
		{&RowError{File: "a.jsonl", Row: 0, Err: errorOf(ErrMalformed, "blank line")}, `data: a.jsonl: row 0: blank line`},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}
