// Package vecfile reads and writes the vector files of the ANN benchmarks:
//
//   - .fvecs, .ivecs and .bvecs (the TEXMEX corpus of Jégou et al., used by
//     ann-benchmarks for SIFT, GIST and their ground truth): per vector a
//     little-endian int32 dimension d, then d values: float32 (fvecs),
//     int32 (ivecs) or uint8 (bvecs), little-endian. Every vector of a file
//     must have the same dimension, between 1 and MaxDim.
//   - IDX (the format of MNIST and Fashion-MNIST): two zero bytes, a type
//     byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
//     0x0E float64), a rank byte r ≥ 1, r big-endian uint32 sizes, then the
//     values big-endian in row-major order. The first size counts the items;
//     each item is a row of the product of the others.
//
// Files whose name ends in .gz are decompressed on the fly. Vectors come
// back row-major in one slice with their dimension; n = len/dim.
//
// Every malformed input is an error, never a panic: a decoder names the
// vector (or item) that is wrong and the byte offset where it starts, and
// the Read functions add the file's name. Allocation grows with the bytes
// actually read, so a header that claims more data than the input holds
// costs nothing. The decoders are fuzzed.
package vecfile
