package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/parquet-go/parquet-go"
)

// Reader reads the rows of one table file in batches.
//
// Read fills batch[:n] with the next rows and returns n and an error:
//
//   - err == nil: batch[:n] holds n ≥ 1 rows (n may be < len(batch); n is 0
//     only for an empty batch); call
//     Read again.
//   - err == io.EOF: the file is exhausted; batch[:n] holds its last n ≥ 0
//     rows. Later calls return 0, io.EOF.
//   - any other error: batch[:n] holds the good rows before the problem; err
//     is usually a *RowError naming the file, row and column. Later calls
//     return 0 and the same error.
//
// So, as with io.Reader, process batch[:n] before looking at err. Every row
// returned has passed its Check method (when *T has one), and a Parquet
// file's schema was compared with T's when it was opened.
//
// Read reuses the backing arrays of slice fields already in batch (e.g.
// Item.ContentEmb): a caller that keeps rows past the next Read into the same
// batch must copy those slices or pass a fresh batch. A Reader is not safe for
// concurrent use; Close releases the file.
type Reader[T any] interface {
	Read(batch []T) (int, error)
	Close() error
}

// checkable is implemented by the pointers of the table row types.
type checkable interface{ Check() error }

// checkRows checks rows and returns how many passed before the first that
// failed, with its error wrapped in a RowError; first is the index of rows[0]
// in the file.
func checkRows[T any](name string, first int64, rows []T) (int, error) {
	for i := range rows {
		c, ok := any(&rows[i]).(checkable)
		if !ok {
			return len(rows), nil
		}
		if err := c.Check(); err != nil {
			return i, rowError(name, first+int64(i), err)
		}
	}
	return len(rows), nil
}

// readerState is the part of a reader common to both formats.
type readerState struct {
	name   string // base name, for errors
	row    int64  // index of the next row
	err    error  // sticky error, io.EOF at the end
	closed bool
}

// close marks the reader closed and reports whether it already was.
func (s *readerState) close() (already bool) {
	already, s.closed = s.closed, true
	s.err = fmt.Errorf("data: read %s: reader is closed", s.name)
	return already
}

// deliver counts the n rows about to be returned and makes err sticky.
func (s *readerState) deliver(n int, err error) (int, error) {
	s.row += int64(n)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// parquetReader reads a Parquet file.
type parquetReader[T any] struct {
	readerState
	closer io.Closer
	pr     *parquet.GenericReader[T]
}

func openParquet[T any](path string) (Reader[T], error) {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", name, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: open %s: %w", name, err)
	}
	r, err := newParquetReader[T](name, f, info.Size(), f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// newParquetReader opens the Parquet file in ra, of the given size, checks
// its schema against T's and returns a reader of its rows that closes closer
// when closed.
func newParquetReader[T any](name string, ra io.ReaderAt, size int64, closer io.Closer) (r *parquetReader[T], err error) {
	fail := func(err error) error { return &RowError{File: name, Row: -1, Err: err} }
	defer func() {
		if v := recover(); v != nil {
			r, err = nil, fail(recovered(v))
		}
	}()
	want, err := schemaOf[T]()
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", name, err)
	}
	if err := guardFooter(ra, size); err != nil {
		return nil, fail(err)
	}
	pf, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fail(wrapError(ErrMalformed, "corrupt Parquet file", err))
	}
	if err := checkSchema(name, want, pf.Schema()); err != nil {
		return nil, err
	}
	if err := guardPages(ra, size, pf); err != nil {
		return nil, fail(err)
	}
	pr := parquet.NewGenericReader[T](pf, want)
	return &parquetReader[T]{readerState: readerState{name: name}, closer: closer, pr: pr}, nil
}

func (r *parquetReader[T]) Read(batch []T) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	n, err := r.readRows(batch)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &RowError{File: r.name, Row: r.row + int64(n), Err: wrapError(ErrMalformed, "corrupt Parquet file", err)}
	} else if err != nil {
		err = io.EOF
	}
	good, cerr := checkRows(r.name, r.row, batch[:n])
	if cerr != nil {
		return r.deliver(good, cerr)
	}
	return r.deliver(n, err)
}

// readRows calls parquet-go, turning a panic into an error.
func (r *parquetReader[T]) readRows(batch []T) (n int, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, err = 0, recovered(v)
		}
	}()
	return r.pr.Read(batch)
}

// Close releases the file; closing again does nothing.
func (r *parquetReader[T]) Close() error {
	if r.close() {
		return nil
	}
	var err error
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = recovered(v)
			}
		}()
		err = r.pr.Close()
	}()
	if r.closer != nil {
		if cerr := r.closer.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("data: close %s: %w", r.name, err)
	}
	return nil
}

// maxLine bounds the length of a JSONL line.
const maxLine = 64 << 20

// jsonlReader reads a JSONL file.
type jsonlReader[T any] struct {
	readerState
	closer io.Closer
	sc     *bufio.Scanner
	dec    *jsonDecoder
}

func openJSONL[T any](path string) (Reader[T], error) {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", name, err)
	}
	r, err := newJSONLReader[T](name, f, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// newJSONLReader returns a reader of the JSONL lines of rd that closes
// closer when closed.
func newJSONLReader[T any](name string, rd io.Reader, closer io.Closer) (*jsonlReader[T], error) {
	codec, err := jsonCodecFor[T]()
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", name, err)
	}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &jsonlReader[T]{readerState: readerState{name: name}, closer: closer, sc: sc, dec: newJSONDecoder(codec)}, nil
}

func (r *jsonlReader[T]) Read(batch []T) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for i := range batch {
		row := r.row + int64(i)
		line, err := r.next(row)
		if err != nil {
			return r.deliver(i, err)
		}
		if err := r.dec.decode(line, rowPointer(&batch[i])); err != nil {
			return r.deliver(i, rowError(r.name, row, err))
		}
		if _, err := checkRows(r.name, row, batch[i:i+1]); err != nil {
			return r.deliver(i, err)
		}
	}
	return r.deliver(len(batch), nil)
}

// next returns the line of the given row, io.EOF after the last line, or an
// error for a blank line followed by more data.
func (r *jsonlReader[T]) next(row int64) ([]byte, error) {
	if !r.sc.Scan() {
		return nil, r.scanError(row)
	}
	line := r.sc.Bytes()
	if len(bytes.TrimSpace(line)) > 0 {
		return line, nil
	}
	// A blank line is fine only if nothing but blank lines follows.
	for r.sc.Scan() {
		if len(bytes.TrimSpace(r.sc.Bytes())) > 0 {
			return nil, &RowError{File: r.name, Row: row, Err: errorOf(ErrMalformed, "blank line")}
		}
	}
	return nil, r.scanError(row)
}

// scanError returns the scanner's error at the given row, or io.EOF.
func (r *jsonlReader[T]) scanError(row int64) error {
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &RowError{File: r.name, Row: row, Err: errorOf(ErrMalformed, "line longer than %d MiB", maxLine>>20)}
		}
		return &RowError{File: r.name, Row: row, Err: fmt.Errorf("read: %w", err)}
	}
	return io.EOF
}

// Close releases the file; closing again does nothing.
func (r *jsonlReader[T]) Close() error {
	if r.close() || r.closer == nil {
		return nil
	}
	if err := r.closer.Close(); err != nil {
		return fmt.Errorf("data: close %s: %w", r.name, err)
	}
	return nil
}

// ReadAll reads every row of table in dir (see Open).
func ReadAll[T any](dir, table string) ([]T, error) {
	r, err := Open[T](dir, table)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	const batch = 4096
	var rows []T
	for {
		rows = slices.Grow(rows, batch)
		n, err := r.Read(rows[len(rows) : len(rows)+batch])
		rows = rows[:len(rows)+n]
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ForEach reads table in dir (see Open) and calls fn with consecutive
// batches of at most batchSize rows (a default of 4096 if batchSize ≤ 0)
// until the rows run out, a read fails or fn returns an error, which ForEach
// returns unchanged. The batch is reused: fn must not keep it or its rows'
// slices.
func ForEach[T any](dir, table string, batchSize int, fn func([]T) error) error {
	if batchSize <= 0 {
		batchSize = 4096
	}
	r, err := Open[T](dir, table)
	if err != nil {
		return err
	}
	defer r.Close()
	batch := make([]T, batchSize)
	for {
		n, err := r.Read(batch)
		if n > 0 {
			if ferr := fn(batch[:n]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
