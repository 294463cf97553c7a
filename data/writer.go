package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// Writer writes the rows of one table file. Rows are not checked (see the
// Check methods); values JSON cannot hold (NaN, ±Inf) fail in JSONL.
//
// Nothing is visible under the final name until Close succeeds: rows go to a
// ".tmp" file which Close syncs and renames. After a failed Write the writer
// is broken: later Writes return the same error and Close removes the
// temporary file and returns it. Abort removes the temporary file; it does
// nothing after Close, so
//
//	w, err := data.Create[data.Item](dir, data.TableItems, data.FormatParquet)
//	if err != nil { ... }
//	defer w.Abort()
//	... w.Write(rows) ...
//	return w.Close()
//
// never leaves a partial file behind. A Writer is not safe for concurrent
// use. The bytes written are a deterministic function of the sequence of
// Write calls (rows and batch boundaries).
type Writer[T any] interface {
	// Write appends rows to the file. It does not retain rows.
	Write(rows []T) error
	// Close finishes the file and moves it to its final name.
	Close() error
	// Abort discards the file; it is a no-op after Close or Abort.
	Abort() error
}

const (
	// rowGroupRows bounds the rows of a Parquet row group.
	rowGroupRows = 128 << 10
	// rowGroupBytes bounds the estimated (uncompressed) size of a Parquet
	// row group, for tables with wide rows.
	rowGroupBytes = 128 << 20
	// writeChunk is how many rows the Parquet writer takes at once between
	// checks of the row group's size.
	writeChunk = 4096
	// jsonlFlushBytes is the JSONL writer's buffer size.
	jsonlFlushBytes = 1 << 20
)

// atomicFile is a file written under a temporary name and renamed to its
// final name once complete and synced.
type atomicFile struct {
	f    *os.File
	path string // final path
	tmp  string
	n    int64 // bytes written
}

func createAtomic(path string) (*atomicFile, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data: create %s: %w", filepath.Base(path), err)
	}
	return &atomicFile{f: f, path: path, tmp: tmp}, nil
}

func (a *atomicFile) Write(p []byte) (int, error) {
	n, err := a.f.Write(p)
	a.n += int64(n)
	return n, err
}

// commit syncs the file, renames it to its final name and syncs the
// directory. On failure it removes the temporary file.
func (a *atomicFile) commit() error {
	err := a.f.Sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.tmp, a.path)
	}
	if err != nil {
		os.Remove(a.tmp)
		return fmt.Errorf("data: commit %s: %w", filepath.Base(a.path), err)
	}
	if err := syncDir(filepath.Dir(a.path)); err != nil {
		return fmt.Errorf("data: commit %s: %w", filepath.Base(a.path), err)
	}
	return nil
}

// abort closes and removes the temporary file.
func (a *atomicFile) abort() error {
	a.f.Close()
	if err := os.Remove(a.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data: abort %s: %w", filepath.Base(a.path), err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// writerState is the part of a writer common to both formats: the file, the
// sticky error and whether the writer is finished.
type writerState struct {
	file *atomicFile
	name string // final base name, for errors
	rows int64  // rows written so far
	err  error
	done bool
}

// fail records err as the writer's sticky error and returns it.
func (s *writerState) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// finish commits the file if finishErr and the sticky error are nil, else
// removes it.
func (s *writerState) finish(finishErr error) error {
	if s.done {
		return s.err
	}
	s.done = true
	if finishErr != nil {
		s.fail(finishErr)
	}
	if s.err != nil {
		s.file.abort()
		return s.err
	}
	if err := s.file.commit(); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *writerState) abort() error {
	if s.done {
		return nil
	}
	s.done = true
	s.fail(fmt.Errorf("data: %s: writer aborted", s.name))
	return s.file.abort()
}

// closedError is returned by Write after Close or Abort.
func (s *writerState) closedError() error {
	if s.err != nil {
		return s.err
	}
	return fmt.Errorf("data: write %s: writer is closed", s.name)
}

// parquetWriter writes a Parquet file with zstd compression and bounded row
// groups.
type parquetWriter[T any] struct {
	writerState
	pw *parquet.GenericWriter[T]
}

func createParquet[T any](path string) (w Writer[T], err error) {
	name := filepath.Base(path)
	var file *atomicFile
	defer func() {
		if v := recover(); v != nil {
			if file != nil {
				file.abort()
			}
			w, err = nil, &RowError{File: name, Row: -1, Err: fmt.Errorf("create writer: %w", recovered(v))}
		}
	}()
	schema, err := schemaOf[T]()
	if err != nil {
		return nil, fmt.Errorf("data: create %s: %w", name, err)
	}
	file, err = createAtomic(path)
	if err != nil {
		return nil, err
	}
	pw := parquet.NewGenericWriter[T](file, schema,
		parquet.Compression(&zstd.Codec{}),
		parquet.MaxRowsPerRowGroup(rowGroupRows),
	)
	return &parquetWriter[T]{writerState: writerState{file: file, name: name}, pw: pw}, nil
}

func (w *parquetWriter[T]) Write(rows []T) error {
	if w.done || w.err != nil {
		return w.closedError()
	}
	for len(rows) > 0 {
		n := min(len(rows), writeChunk)
		if err := w.writeChunk(rows[:n]); err != nil {
			return w.fail(&RowError{File: w.name, Row: -1, Err: fmt.Errorf("write rows: %w", err)})
		}
		w.rows += int64(n)
		rows = rows[n:]
	}
	return nil
}

// writeChunk writes rows and flushes the row group if it has grown past
// rowGroupBytes.
func (w *parquetWriter[T]) writeChunk(rows []T) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	if _, err := w.pw.Write(rows); err != nil {
		return err
	}
	if w.pw.Size()-w.file.n >= rowGroupBytes {
		return w.pw.Flush()
	}
	return nil
}

func (w *parquetWriter[T]) Close() error {
	if w.done {
		return w.closedError()
	}
	var err error
	if w.err == nil {
		if cerr := w.closeParquet(); cerr != nil {
			err = &RowError{File: w.name, Row: -1, Err: fmt.Errorf("close writer: %w", cerr)}
		}
	}
	return w.finish(err)
}

func (w *parquetWriter[T]) closeParquet() (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	return w.pw.Close()
}

func (w *parquetWriter[T]) Abort() error { return w.abort() }

// jsonlWriter writes one JSON object per line.
type jsonlWriter[T any] struct {
	writerState
	codec *jsonCodec
	buf   []byte
}

func createJSONL[T any](path string) (Writer[T], error) {
	codec, err := jsonCodecFor[T]()
	if err != nil {
		return nil, fmt.Errorf("data: create %s: %w", filepath.Base(path), err)
	}
	file, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	return &jsonlWriter[T]{
		writerState: writerState{file: file, name: filepath.Base(path)},
		codec:       codec,
		buf:         make([]byte, 0, jsonlFlushBytes+jsonlFlushBytes/4),
	}, nil
}

func (w *jsonlWriter[T]) Write(rows []T) error {
	if w.done || w.err != nil {
		return w.closedError()
	}
	for i := range rows {
		var err error
		w.buf, err = w.codec.appendRow(w.buf, rowPointer(&rows[i]))
		if err != nil {
			return w.fail(rowError(w.name, w.rows, err))
		}
		w.buf = append(w.buf, '\n')
		w.rows++
		if len(w.buf) >= jsonlFlushBytes {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *jsonlWriter[T]) flush() error {
	if _, err := w.file.Write(w.buf); err != nil {
		return w.fail(fmt.Errorf("data: write %s: %w", w.name, err))
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *jsonlWriter[T]) Close() error {
	if w.done {
		return w.closedError()
	}
	if w.err == nil {
		w.flush()
	}
	return w.finish(nil)
}

func (w *jsonlWriter[T]) Abort() error { return w.abort() }
