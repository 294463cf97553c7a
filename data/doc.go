// Package data defines tandem's tables and reads and writes them as Parquet
// or JSONL files, checking every row it reads.
//
// # Tables
//
// A data directory holds one file per table: items, ads, users, events,
// requests, impressions and candidates (see Tables), with row types Item, Ad,
// User, Event, Request, Impression and Candidate. Their parquet and json
// struct tags name the columns, the same in both formats. Each row type has
// a Check method enforcing the rules that need no config (ids ≥ 0, finite
// floats, known enums, labels in {0, 1}, probabilities in (0, 1), ...);
// surface vocabularies and embedding widths depend on the config and are
// checked elsewhere.
//
// # Formats
//
// A table's file is "<table>.parquet" or "<table>.jsonl" (FileName); a
// directory must not hold both. Parquet files are written with zstd
// compression in row groups of at most 128Ki rows (fewer for wide rows), so
// that memory stays bounded for any table size. JSONL files hold one JSON
// object per line, keyed by the json tags; floats are written in the
// shortest form that reads back to the same bits, so both formats round-trip
// exactly. NaN and ±Inf cannot be written as JSON.
//
// Writers write to "<file>.tmp" and only Close syncs it and renames it into
// place, so a crashed run never leaves a complete-looking file; the same
// sequence of Write calls always produces the same bytes.
//
// # Errors
//
// Problems in a file are reported as a *RowError naming the file's base
// name and, where they apply, the 0-based row and the column:
//
//	data: items.parquet: row 17: column "content_emb": NaN at index 3
//
// Its Err matches one of the sentinels with errors.Is: ErrBadValue (a row
// fails its Check), ErrMissingColumn, ErrUnknownColumn, ErrWrongType (the
// file's columns differ from the row type's) or ErrMalformed (not Parquet,
// not a JSON object, a blank line in the middle of a JSONL file, ...). A
// Parquet schema mismatch reports every bad column, joined with
// errors.Join. Opening a directory without the table, or with it in both
// formats, fails with ErrNoTable or ErrAmbiguousTable.
//
// No input file makes the package panic or exhaust memory: parquet-go's
// panics are recovered as errors, and before parquet-go reads a file its
// footer and page headers are checked for sizes that would make it allocate
// gigabytes. Parquet files must use zstd, snappy, gzip, brotli or no
// compression (parquet-go's LZ4 decoder is not safe on corrupt data).
//
// # Streaming
//
// Open (or OpenFile) returns a Reader that reads rows in caller-sized
// batches with io.Reader-like semantics, and Create a Writer that takes
// batches; their memory does not grow with the table (a Parquet writer
// buffers one row group, a reader one page per column). ReadAll and ForEach
// wrap a Reader for the common cases:
//
//	err := data.ForEach(dir, data.TableImpressions, 8192, func(rows []data.Impression) error {
//		for i := range rows {
//			...
//		}
//		return nil
//	})
package data
