package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Format is a data file format; it is also the file name's extension.
type Format string

// The supported formats.
const (
	FormatParquet Format = "parquet"
	FormatJSONL   Format = "jsonl"
)

// Formats lists the supported formats in the order Open looks for them.
var Formats = []Format{FormatParquet, FormatJSONL}

// ParseFormat returns the format named s ("parquet" or "jsonl").
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatParquet, FormatJSONL:
		return f, nil
	}
	return "", fmt.Errorf("parse format %q: %w (want parquet or jsonl)", s, ErrUnknownFormat)
}

// FileName returns the name of a table's file in format f: "<table>.<f>".
func FileName(table string, f Format) string { return table + "." + string(f) }

// formatOfPath returns the format named by path's extension.
func formatOfPath(path string) (Format, error) {
	ext := strings.TrimPrefix(filepath.Ext(path), ".")
	f, err := ParseFormat(ext)
	if err != nil {
		return "", fmt.Errorf("data: %s: %w: extension %q (want .parquet or .jsonl)", filepath.Base(path), ErrUnknownFormat, ext)
	}
	return f, nil
}

// checkTable rejects table names that are not plain file name stems.
func checkTable(table string) error {
	if table == "" || table == "." || table == ".." || strings.ContainsAny(table, `/\`) {
		return fmt.Errorf("data: bad table name %q", table)
	}
	return nil
}

// TablePath returns the path of table's file in dir and its format. It
// fails, naming the table and dir, when dir holds the table in neither or
// in both formats.
func TablePath(dir, table string) (string, Format, error) {
	if err := checkTable(table); err != nil {
		return "", "", err
	}
	var found []Format
	for _, f := range Formats {
		_, err := os.Stat(filepath.Join(dir, FileName(table, f)))
		switch {
		case err == nil:
			found = append(found, f)
		case !errors.Is(err, fs.ErrNotExist):
			return "", "", fmt.Errorf("data: find table %q in %s: %w", table, dir, err)
		}
	}
	switch len(found) {
	case 0:
		return "", "", fmt.Errorf("%w %q in %s: want %s or %s", ErrNoTable, table, dir,
			FileName(table, FormatParquet), FileName(table, FormatJSONL))
	case 1:
		return filepath.Join(dir, FileName(table, found[0])), found[0], nil
	}
	return "", "", fmt.Errorf("%w: %q in %s has both %s and %s; remove one", ErrAmbiguousTable, table, dir,
		FileName(table, FormatParquet), FileName(table, FormatJSONL))
}

// Open opens table's file in dir, "<table>.parquet" or "<table>.jsonl", for
// reading rows of type T. It fails when neither or both exist. See Reader for
// what reading checks.
func Open[T any](dir, table string) (Reader[T], error) {
	path, _, err := TablePath(dir, table)
	if err != nil {
		return nil, err
	}
	return OpenFile[T](path)
}

// OpenFile opens a data file for reading rows of type T, in the format named
// by its extension (.parquet or .jsonl).
func OpenFile[T any](path string) (Reader[T], error) {
	f, err := formatOfPath(path)
	if err != nil {
		return nil, err
	}
	if f == FormatParquet {
		return openParquet[T](path)
	}
	return openJSONL[T](path)
}

// Create creates table's file in dir in format f for writing rows of type T.
// Rows go to "<table>.<f>.tmp", which Close syncs and renames to
// "<table>.<f>", replacing any file of that name. Create fails if dir holds
// the table in the other format, since Open would then find both.
func Create[T any](dir, table string, f Format) (Writer[T], error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, fmt.Errorf("data: create table %q: %w", table, err)
	}
	for _, other := range Formats {
		if other == f {
			continue
		}
		name := FileName(table, other)
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("data: create %s in %s: %s exists; remove it first", FileName(table, f), dir, name)
		}
	}
	path := filepath.Join(dir, FileName(table, f))
	if f == FormatParquet {
		return createParquet[T](path)
	}
	return createJSONL[T](path)
}
