// Package checkpoint reads and writes model weights in the safetensors
// format, the format of HuggingFace's safetensors library, so that the
// files can be opened from Python as well as from Go.
//
// # Format
//
// A file is an 8-byte little-endian unsigned header length N, then N
// bytes of JSON header, then the data buffer. The header is a JSON object
// with one entry per tensor,
//
//	"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
//
// where the offsets are the tensor's byte range relative to the start of
// the data buffer, and an optional "__metadata__" entry, an object with
// string values only. Tensor data is little-endian and row-major. This
// package supports two dtypes: F32 (IEEE binary32) and BF16 (bfloat16,
// see package bf16).
//
// [Write] lays the tensors out in the order of their sorted names,
// contiguously from offset 0, writes "__metadata__" first and the tensors
// in that same order, with no whitespace, and pads the header with
// trailing spaces so that the data buffer starts at a multiple of 8
// bytes. The same input always gives the same bytes. The file is written
// to a temporary file in the same directory, synced and renamed into
// place, and the directory is synced, so that a reader sees either the
// old file or the complete new one.
//
// [Decode] and [Read] accept tensors in any order in the buffer but check
// that they exactly tile it: no overlaps, no gaps, no trailing bytes.
//
// # Values
//
// In memory a tensor's values are always float32; a BF16 tensor is
// rounded to bfloat16 (to nearest, ties to even) when written and widened
// exactly when read. A NaN or infinity, or a value that rounds to an
// infinity in bfloat16, is an error when writing and when reading: model
// weights are finite.
//
// # Errors
//
// Every error names the file and, where one is involved, the tensor or
// metadata key. Malformed input gives an error, never a panic.
package checkpoint
