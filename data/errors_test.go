package data

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func nan() float64 { return math.NaN() }

// readFirstError opens table in dir, reads a batch of up to 10 rows and
// returns how many were delivered with the error.
func readFirstError[T any](t *testing.T, dir, table string) (int, error) {
	t.Helper()
	r, err := Open[T](dir, table)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n, err := r.Read(make([]T, 10))
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		if n2, err2 := r.Read(make([]T, 10)); n2 != 0 || err2 != err {
			t.Errorf("Read after an error = %d, %v; want 0 and the same error", n2, err2)
		}
	}
	return n, err
}

// badRow writes rows, whose row 2 is bad, in format f (JSONL lines then
// edited by edit, if not nil) and checks the error of reading them back.
func badRow[T any](t *testing.T, f Format, table string, rows []T, edit func(line string) string,
	kind error, column string, parts ...string) {
	t.Helper()
	dir := t.TempDir()
	writeTable(t, dir, table, f, rows)
	if edit != nil {
		editLine(t, filepath.Join(dir, FileName(table, f)), 2, edit)
	}
	n, err := readFirstError[T](t, dir, table)
	if n != 2 {
		t.Errorf("%d good rows delivered before the bad one, want 2", n)
	}
	wantError(t, err, kind, FileName(table, f), 2, column, parts...)
}

// editLine replaces line i of a JSONL file with edit(line).
func editLine(t *testing.T, path string, i int, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines[i] = edit(lines[i])
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace returns an edit that replaces old by new in a line, failing the
// test if old is not there.
func replace(t *testing.T, old, new string) func(string) string {
	return func(line string) string {
		if !strings.Contains(line, old) {
			t.Fatalf("line %s has no %s", line, old)
		}
		return strings.Replace(line, old, new, 1)
	}
}

func TestBadValues(t *testing.T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			t.Run("negative id", func(t *testing.T) {
				rows := sampleAds(5, 1)
				rows[2].Advertiser = -5
				badRow(t, f, TableAds, rows, nil, ErrBadValue, "advertiser", "negative id -5")
			})
			t.Run("negative context item", func(t *testing.T) {
				rows := sampleRequests(5, 1)
				rows[2].ContextItemID = -2
				badRow(t, f, TableRequests, rows, nil, ErrBadValue, "context_item_id", "negative id -2")
			})
			t.Run("negative query topic", func(t *testing.T) {
				rows := sampleRequests(5, 1)
				rows[2].QueryTopic = -3
				badRow(t, f, TableRequests, rows, nil, ErrBadValue, "query_topic", "negative value -3")
			})
			t.Run("bad enum", func(t *testing.T) {
				rows := sampleEvents(5, 1)
				rows[2].Action = "like"
				badRow(t, f, TableEvents, rows, nil, ErrBadValue, "action", `"like" is not one of {"click", "save", "long_click", "hide"}`)
			})
			t.Run("bad kind", func(t *testing.T) {
				rows := sampleItems(5, 1)
				rows[2].Kind = "Ad"
				badRow(t, f, TableItems, rows, nil, ErrBadValue, "kind", `"Ad" is not one of`)
			})
			t.Run("empty string", func(t *testing.T) {
				rows := sampleUsers(5, 1)
				rows[2].Device = ""
				badRow(t, f, TableUsers, rows, nil, ErrBadValue, "device", "empty string")
			})
			t.Run("empty eligible surface", func(t *testing.T) {
				rows := sampleAds(5, 1)
				rows[2].EligibleSurfaces = []string{"search", ""}
				badRow(t, f, TableAds, rows, nil, ErrBadValue, "eligible_surfaces", "empty string at index 1")
			})
			t.Run("zero timestamp", func(t *testing.T) {
				rows := sampleEvents(5, 1)
				rows[2].TsMs = 0
				badRow(t, f, TableEvents, rows, nil, ErrBadValue, "ts_ms", "timestamp 0 is not positive")
			})
			t.Run("zero bid", func(t *testing.T) {
				rows := sampleAds(5, 1)
				rows[2].Bid = 0
				badRow(t, f, TableAds, rows, nil, ErrBadValue, "bid", "0 is not a positive finite number")
			})
			t.Run("label not 0 or 1", func(t *testing.T) {
				rows := sampleImpressions(5, 1)
				rows[2].Save = 2
				badRow(t, f, TableImpressions, rows, nil, ErrBadValue, "save", "label 2 is not 0 or 1")
			})
			t.Run("long click without click", func(t *testing.T) {
				rows := sampleImpressions(5, 1)
				rows[2].Click, rows[2].LongClick, rows[2].Hide = 0, 1, 0
				badRow(t, f, TableImpressions, rows, nil, ErrBadValue, "long_click", "long_click=1 without click")
			})
			t.Run("hide with click", func(t *testing.T) {
				rows := sampleImpressions(5, 1)
				rows[2].Click, rows[2].LongClick, rows[2].Hide = 1, 0, 1
				badRow(t, f, TableImpressions, rows, nil, ErrBadValue, "hide", "hide=1 with click=1")
			})
			t.Run("p_true is 1", func(t *testing.T) {
				rows := sampleImpressions(5, 1)
				rows[2].PTrueSave = 1
				badRow(t, f, TableImpressions, rows, nil, ErrBadValue, "p_true_save", "1 is not in (0, 1)")
			})
			t.Run("p_true negative", func(t *testing.T) {
				rows := sampleImpressions(5, 1)
				rows[2].PTrueHide = -0.5
				badRow(t, f, TableImpressions, rows, nil, ErrBadValue, "p_true_hide", "-0.5 is not in (0, 1)")
			})
		})
	}
}

// TestNonFinite covers NaN and infinities, which Parquet holds and rows
// reject, and which JSON cannot hold: a JSONL line with a bare NaN (as
// Python's json module writes) is invalid JSON, reported at its column.
func TestNonFinite(t *testing.T) {
	t.Run("parquet", func(t *testing.T) {
		f := FormatParquet
		t.Run("NaN float", func(t *testing.T) {
			rows := sampleUsers(5, 1)
			rows[2].Activity = float32(nan())
			badRow(t, f, TableUsers, rows, nil, ErrBadValue, "activity", "NaN")
		})
		t.Run("Inf float", func(t *testing.T) {
			rows := sampleCandidates(5, 1)
			rows[2].LoggingScore = float32(math.Inf(-1))
			badRow(t, f, TableCandidates, rows, nil, ErrBadValue, "logging_score", "-Inf")
		})
		t.Run("NaN embedding element", func(t *testing.T) {
			rows := sampleItems(5, 1)
			rows[2].ContentEmb[3] = float32(nan())
			badRow(t, f, TableItems, rows, nil, ErrBadValue, "content_emb", `data: items.parquet: row 2: column "content_emb": NaN at index 3`)
		})
		t.Run("NaN p_true", func(t *testing.T) {
			rows := sampleImpressions(5, 1)
			rows[2].PTrueClick = nan()
			badRow(t, f, TableImpressions, rows, nil, ErrBadValue, "p_true_click", "NaN is not in (0, 1)")
		})
		t.Run("Inf bid", func(t *testing.T) {
			rows := sampleAds(5, 1)
			rows[2].Bid = float32(math.Inf(1))
			badRow(t, f, TableAds, rows, nil, ErrBadValue, "bid", "+Inf is not a positive finite number")
		})
	})
	t.Run("jsonl", func(t *testing.T) {
		f := FormatJSONL
		t.Run("NaN float", func(t *testing.T) {
			rows := sampleUsers(5, 1)
			rows[2].Activity = 0.25
			badRow(t, f, TableUsers, rows, replace(t, `"activity":0.25`, `"activity":NaN`), ErrMalformed, "activity", "invalid JSON")
		})
		t.Run("float out of range", func(t *testing.T) {
			rows := sampleUsers(5, 1)
			rows[2].Activity = 0.25
			badRow(t, f, TableUsers, rows, replace(t, `"activity":0.25`, `"activity":1e39`), ErrBadValue, "activity", "1e39 out of range for float32")
		})
		t.Run("NaN embedding element", func(t *testing.T) {
			rows := sampleItems(5, 1)
			rows[2].ContentEmb[3] = 0.25
			badRow(t, f, TableItems, rows, replace(t, `,0.25,`, `,NaN,`), ErrMalformed, "content_emb", "invalid JSON")
		})
		t.Run("Infinity p_true", func(t *testing.T) {
			rows := sampleImpressions(5, 1)
			rows[2].PTrueClick = 0.25
			badRow(t, f, TableImpressions, rows, replace(t, `"p_true_click":0.25`, `"p_true_click":Infinity`), ErrMalformed, "p_true_click", "invalid JSON")
		})
	})
}

// Rows with a different layout, written with parquet-go directly.
type (
	itemNoEmb struct {
		ItemID   int64  `parquet:"item_id"`
		Kind     string `parquet:"kind"`
		Category int32  `parquet:"category"`
	}
	itemExtra struct {
		Item
		Extra float32 `parquet:"extra"`
	}
	itemStringID struct {
		ItemID     string    `parquet:"item_id"`
		Kind       string    `parquet:"kind"`
		Category   int32     `parquet:"category"`
		ContentEmb []float32 `parquet:"content_emb,list"`
	}
	itemDoubleEmb struct {
		ItemID     int64     `parquet:"item_id"`
		Kind       string    `parquet:"kind"`
		Category   int32     `parquet:"category"`
		ContentEmb []float64 `parquet:"content_emb,list"`
	}
	itemRenamed struct {
		ID         int64     `parquet:"id"`
		Kind       string    `parquet:"kind"`
		Category   int32     `parquet:"category"`
		ContentEmb []float32 `parquet:"content_emb,list"`
	}
	candidateOptional struct {
		RequestID    int64    `parquet:"request_id"`
		AdID         int64    `parquet:"ad_id"`
		LoggingScore *float32 `parquet:"logging_score,optional"`
		Shown        bool     `parquet:"shown"`
	}
	// candidateReordered has the columns in another order, with plain
	// strings: compatible.
	candidateReordered struct {
		Shown        bool    `parquet:"shown"`
		LoggingScore float32 `parquet:"logging_score"`
		AdID         int64   `parquet:"ad_id"`
		RequestID    int64   `parquet:"request_id"`
	}
)

// writeParquet writes rows of any struct type with parquet-go.
func writeParquet[T any](t *testing.T, path string, rows []T, options ...parquet.WriterOption) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[T](f, options...)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParquetSchemaErrors(t *testing.T) {
	items := sampleItems(3, 1)
	path := func(dir string) string { return filepath.Join(dir, "items.parquet") }
	open := func(dir string) error {
		_, err := Open[Item](dir, TableItems)
		return err
	}
	t.Run("missing column", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, path(dir), []itemNoEmb{{ItemID: 1, Kind: KindAd}})
		wantError(t, open(dir), ErrMissingColumn, "items.parquet", -1, "content_emb",
			`data: items.parquet: column "content_emb": missing column`)
	})
	t.Run("unknown column", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, path(dir), []itemExtra{{Item: items[0]}})
		wantError(t, open(dir), ErrUnknownColumn, "items.parquet", -1, "extra",
			`data: items.parquet: column "extra": unknown column`)
	})
	t.Run("wrong type", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, path(dir), []itemStringID{{ItemID: "1", Kind: KindAd}})
		wantError(t, open(dir), ErrWrongType, "items.parquet", -1, "item_id",
			`column "item_id": wrong type: file has required STRING, want required INT(64,true)`)
	})
	t.Run("wrong element type", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, path(dir), []itemDoubleEmb{{ItemID: 1, Kind: KindAd, ContentEmb: []float64{1}}})
		wantError(t, open(dir), ErrWrongType, "items.parquet", -1, "content_emb",
			"wrong type at list.element: file has required DOUBLE, want required FLOAT")
	})
	t.Run("optional column", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, filepath.Join(dir, "candidates.parquet"), []candidateOptional{{RequestID: 1}})
		_, err := Open[Candidate](dir, TableCandidates)
		wantError(t, err, ErrWrongType, "candidates.parquet", -1, "logging_score",
			"file has optional FLOAT, want required FLOAT (a nullable column: tandem tables have no nulls")
	})
	t.Run("renamed column", func(t *testing.T) {
		dir := t.TempDir()
		writeParquet(t, path(dir), []itemRenamed{{ID: 1, Kind: KindAd}})
		err := open(dir)
		var re *RowError
		if !errors.As(err, &re) || re.Column != "item_id" || !errors.Is(err, ErrMissingColumn) || !errors.Is(err, ErrUnknownColumn) {
			t.Fatalf("got %v", err)
		}
		want := "data: items.parquet: column \"item_id\": missing column\ndata: items.parquet: column \"id\": unknown column"
		if err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	})
	t.Run("compatible layout", func(t *testing.T) {
		dir := t.TempDir()
		rows := sampleCandidates(10, 1)
		other := make([]candidateReordered, len(rows))
		for i, r := range rows {
			other[i] = candidateReordered{Shown: r.Shown, LoggingScore: r.LoggingScore, AdID: r.AdID, RequestID: r.RequestID}
		}
		// Plain INT64 columns, without the INT(64,true) annotation.
		schema := parquet.NewSchema("candidate", parquet.Group{
			"shown":         parquet.Leaf(parquet.BooleanType),
			"logging_score": parquet.Leaf(parquet.FloatType),
			"ad_id":         parquet.Leaf(parquet.Int64Type),
			"request_id":    parquet.Leaf(parquet.Int64Type),
		})
		writeParquet(t, filepath.Join(dir, "candidates.parquet"), other, schema)
		got, err := ReadAll[Candidate](dir, TableCandidates)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffRows(rows, got); d != "" {
			t.Fatal(d)
		}
	})
}

func TestJSONLErrors(t *testing.T) {
	f := FormatJSONL
	items := func() []Item {
		rows := sampleItems(5, 1)
		rows[2].ItemID, rows[2].Category, rows[2].ContentEmb = 7, 3, []float32{0.5, 1}
		return rows
	}
	cases := []struct {
		name   string
		edit   func(string) string
		kind   error
		column string
		parts  []string
	}{
		{"missing key", replace(t, `,"content_emb":[0.5,1]`, ``), ErrMissingColumn, "content_emb",
			[]string{`data: items.jsonl: row 2: column "content_emb": missing column`}},
		{"unknown key", replace(t, `"category":3`, `"category":3,"foo":1`), ErrUnknownColumn, "foo",
			[]string{`data: items.jsonl: row 2: column "foo": unknown column`}},
		{"case-different key", replace(t, `"category":3`, `"Category":3`), ErrUnknownColumn, "Category", nil},
		{"string for int", replace(t, `"item_id":7`, `"item_id":"7"`), ErrWrongType, "item_id",
			[]string{`column "item_id": wrong type: got "7", want integer`}},
		{"fraction for int", replace(t, `"category":3`, `"category":3.5`), ErrWrongType, "category", []string{"got 3.5, want integer"}},
		{"int out of range", replace(t, `"category":3`, `"category":3000000000`), ErrBadValue, "category",
			[]string{"3000000000 out of range for int32"}},
		{"number for string", replace(t, `"kind":"`, `"kind":5,"x":"`), ErrWrongType, "kind", []string{"got 5, want string"}},
		{"null", replace(t, `"item_id":7`, `"item_id":null`), ErrWrongType, "item_id", []string{"got null, want integer"}},
		{"null list", replace(t, `[0.5,1]`, `null`), ErrWrongType, "content_emb", []string{"got null, want array of numbers"}},
		{"null element", replace(t, `[0.5,1]`, `[0.5,null]`), ErrWrongType, "content_emb", []string{"got null, want number at index 1"}},
		{"string element", replace(t, `[0.5,1]`, `[0.5,"1"]`), ErrWrongType, "content_emb", []string{`got "1", want number at index 1`}},
		{"nested list", replace(t, `[0.5,1]`, `[[0.5],1]`), ErrWrongType, "content_emb", []string{`got [0.5], want number at index 0`}},
		{"duplicate key", replace(t, `"category":3`, `"category":3,"category":3`), ErrMalformed, "category", []string{"duplicate key"}},
		{"not an object", func(string) string { return `[1,2]` }, ErrMalformed, "", []string{"row 2: line is not a JSON object"}},
		{"invalid JSON", func(l string) string { return l[:len(l)-1] }, ErrMalformed, "", []string{"row 2: invalid JSON: unexpected end of JSON input"}},
		{"blank line", func(string) string { return "" }, ErrMalformed, "", []string{"row 2: blank line"}},
		{"whitespace line", func(string) string { return " \t" }, ErrMalformed, "", []string{"row 2: blank line"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			badRow(t, f, TableItems, items(), c.edit, c.kind, c.column, c.parts...)
		})
	}
	t.Run("bool as string", func(t *testing.T) {
		rows := sampleCandidates(5, 1)
		rows[2].Shown = true
		badRow(t, f, TableCandidates, rows, replace(t, `"shown":true`, `"shown":"true"`), ErrWrongType, "shown", `got "true", want boolean`)
	})
	t.Run("label out of int8", func(t *testing.T) {
		rows := sampleImpressions(5, 1)
		rows[2].Save = 1
		badRow(t, f, TableImpressions, rows, replace(t, `"save":1`, `"save":300`), ErrBadValue, "save", "300 out of range for int8")
	})
	t.Run("string list element", func(t *testing.T) {
		rows := sampleAds(5, 1)
		rows[2].EligibleSurfaces = []string{"search"}
		badRow(t, f, TableAds, rows, replace(t, `["search"]`, `["search",3]`), ErrWrongType, "eligible_surfaces", "got 3, want string at index 1")
	})
}

func TestJSONLEscapedKeysAndStrings(t *testing.T) {
	dir := t.TempDir()
	line := `{"item_\u0069d":1,"kind":"\u0061d","category":0,"content_emb":[]}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "items.jsonl"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll[Item](dir, TableItems)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ItemID != 1 || got[0].Kind != KindAd {
		t.Fatalf("got %+v", got)
	}
}

func TestCorruptParquet(t *testing.T) {
	dir := t.TempDir()
	writeTable(t, dir, TableAds, FormatParquet, sampleAds(300, 1))
	path := filepath.Join(dir, "ads.parquet")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	try := func(t *testing.T, content []byte) error {
		t.Helper()
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadAll[Ad](dir, TableAds)
		if err != nil && !strings.HasPrefix(err.Error(), "data: ads.parquet: ") {
			t.Errorf("error %q does not name the file", err)
		}
		return err
	}
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{0, 3, 4, 11, 100, len(good) / 2, len(good) - 9, len(good) - 1} {
			err := try(t, good[:n])
			if err == nil {
				t.Errorf("truncated to %d bytes: no error", n)
			} else if !errors.Is(err, ErrMalformed) {
				t.Errorf("truncated to %d bytes: %v is not ErrMalformed", n, err)
			}
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if err := try(t, []byte(strings.Repeat("not parquet ", 100))); !errors.Is(err, ErrMalformed) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad footer length", func(t *testing.T) {
		bad := append([]byte(nil), good...)
		copy(bad[len(bad)-8:], []byte{0xff, 0xff, 0xff, 0x7f})
		if err := try(t, bad); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "footer length") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("flipped bytes", func(t *testing.T) {
		if raceEnabled {
			t.Skip("checkptr under -race makes parquet-go's recoverable panic fatal; scripts/test.sh runs this without -race")
		}
		// Any outcome but a panic or an error without the file name is fine:
		// a flipped bit in a value may go unnoticed.
		step := max(1, len(good)/400)
		failures := 0
		for i := 0; i < len(good); i += step {
			bad := append([]byte(nil), good...)
			bad[i] ^= 0xa5
			if try(t, bad) != nil {
				failures++
			}
		}
		if failures == 0 {
			t.Error("no flipped byte was noticed")
		}
	})
}
