package data

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Test for them with errors.Is. Those meant to be wrapped
// in a RowError or ColumnError (which carry the "data:" prefix and the file,
// row and column) have no prefix of their own.
var (
	// ErrMissingColumn: a column of the table is absent from the file (or a
	// key from a JSONL line).
	ErrMissingColumn = errors.New("missing column")
	// ErrUnknownColumn: the file (or a JSONL line) has a column the table
	// does not define.
	ErrUnknownColumn = errors.New("unknown column")
	// ErrWrongType: a column's type in the file differs from the table's.
	ErrWrongType = errors.New("wrong type")
	// ErrBadValue: a value breaks one of the rows' rules (see the Check
	// methods).
	ErrBadValue = errors.New("bad value")
	// ErrMalformed: the file is not valid Parquet or a line is not a JSON
	// object.
	ErrMalformed = errors.New("malformed")
	// ErrNoTable: a data directory holds no file for a table.
	ErrNoTable = errors.New("data: no file for table")
	// ErrAmbiguousTable: a data directory holds a table in both formats.
	ErrAmbiguousTable = errors.New("data: table in both formats")
	// ErrUnknownFormat: a format name or file extension is neither parquet
	// nor jsonl.
	ErrUnknownFormat = errors.New("data: unknown format")
)

// RowError reports a problem in a data file, located as precisely as
// possible: its message looks like
//
//	data: items.parquet: row 17: column "content_emb": NaN at index 3
//
// with the row and column parts left out when they do not apply.
type RowError struct {
	// File is the file's base name, e.g. "items.parquet".
	File string
	// Row is the 0-based index of the data row (for JSONL, the line), or -1
	// when the error is not about one row (a schema mismatch, a corrupt
	// footer).
	Row int64
	// Column is the column's name, or "" when the error is not about one
	// column.
	Column string
	// Err is the underlying error.
	Err error
}

// Error formats the error as "data: FILE: row N: column "C": ERR".
func (e *RowError) Error() string {
	var b strings.Builder
	b.WriteString("data: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Row >= 0 {
		b.WriteString("row ")
		b.WriteString(strconv.FormatInt(e.Row, 10))
		b.WriteString(": ")
	}
	if e.Column != "" {
		b.WriteString("column ")
		b.WriteString(strconv.Quote(e.Column))
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *RowError) Unwrap() error { return e.Err }

// ColumnError is the error of a row check (Check methods): it names the
// column, and readers wrap it in a RowError with the file and row.
type ColumnError struct {
	Column string
	Err    error
}

// Error formats the error as "column "C": ERR".
func (e *ColumnError) Error() string {
	return "column " + strconv.Quote(e.Column) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ColumnError) Unwrap() error { return e.Err }

// kindError is an error with a message of its own that matches a sentinel
// with errors.Is, and optionally wraps a cause: "NaN at index 3" is an
// ErrBadValue.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// errorOf returns an error of the given kind (a sentinel) with a formatted
// message.
func errorOf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// wrapError returns an error of the given kind with message "msg: cause".
func wrapError(kind error, msg string, cause error) error {
	return &kindError{kind: kind, msg: msg, cause: cause}
}

// badColumn returns a ColumnError for a bad value of column.
func badColumn(column, format string, args ...any) error {
	return &ColumnError{Column: column, Err: errorOf(ErrBadValue, format, args...)}
}

// rowError wraps err with a file and row. A ColumnError's column moves to
// the RowError so that the message names it once.
func rowError(file string, row int64, err error) *RowError {
	if ce, ok := err.(*ColumnError); ok {
		return &RowError{File: file, Row: row, Column: ce.Column, Err: ce.Err}
	}
	return &RowError{File: file, Row: row, Err: err}
}

// recovered turns a value recovered from a parquet-go panic into an
// ErrMalformed error.
func recovered(v any) error {
	err, ok := v.(error)
	if !ok {
		err = fmt.Errorf("%v", v)
	}
	return wrapError(ErrMalformed, "parquet-go panicked", err)
}
