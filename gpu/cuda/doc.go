// Package cuda binds the parts of the CUDA driver API, cuBLAS, cuBLASLt and
// NVRTC that tandem's GPU backend uses, through purego: no cgo, no CUDA
// headers or toolkit at build time, and a binary that starts on a host
// without a GPU.
//
// [Load] finds and opens the libraries (see [Paths] for the discovery
// order) and resolves every symbol at once, so a missing library or symbol
// is a [*LoadError] listing every path tried and why, never a crash later.
// NVRTC is optional: without it the API carries the reason in
// [API.NVRTCErr] and callers fall back to precompiled PTX.
//
// Every call returns an [*Error] naming the library, the function and the
// CUDA error name. Like the driver itself, the bindings assume that the
// caller keeps a context current on its OS thread (runtime.LockOSThread).
//
// # Memory
//
// Anything the libraries read through a pointer after a call returns, or
// that a CUDA graph captures by address, must live in C memory: kernel
// parameter blocks ([Launch]), GEMM scale factors (alpha, beta), cuBLASLt
// attribute values. The bindings allocate such memory with the driver's
// pinned allocator or with libc's malloc (cmem.go), never in Go memory.
//
// # Row-major products
//
// The engine is row-major, cuBLAS column-major. [BLAS.RowMajorGemm],
// [BLAS.RowMajorGemmStridedBatched] and [Lt.NewLinear] hold the one mapping
// between the two; callers should not issue column-major calls themselves.
package cuda
