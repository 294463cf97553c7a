// Package gpu runs tandem's L1 towers and exact retrieval on an NVIDIA GPU
// (docs/GPU.md). It reaches CUDA through the purego bindings of gpu/cuda,
// so the same cgo-free binary runs on GPU hosts and CPU-only hosts; Open
// fails with the reason (every library path tried, a missing symbol, no
// device) and callers fall back to the CPU engine.
//
// A Device owns lanes: goroutines locked to their OS threads with the
// primary context current, each with a stream, cuBLAS and cuBLASLt handles,
// a workspace and pinned staging memory. A model on the device is a unit:
// its weight arena plus, per lane and batch bucket, the activations and the
// CUDA graph captured against them. Units are reference counted, so a
// reload swaps in a new unit and frees the old one only once every launch
// that began on it has finished.
//
// The plans mirror the CPU engine layer for layer, so the CPU engine is the
// reference: tests run the whole path against the C stand-in of
// gpu/standin (kernels compiled for the host) and compare with it, and
// cmd/gpucheck does the same on a device.
package gpu
