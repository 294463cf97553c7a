// Package engine is tandem's inference engine: a CPU forward pass over the
// model exports of docs/CHECKPOINT.md, built for serving.
//
// Loading an export ([LoadL2], [LoadL1User], [LoadL1Ad]) resolves every
// tensor into a plan: embedding tables as they are, Linear weights packed
// once for the GEMM ([gemm.Packed]). A model is immutable after loading and
// safe for concurrent use; each goroutine runs batches on its own [Worker],
// whose buffers grow to the largest batch seen and are then reused, so a
// steady-state call allocates nothing.
//
// Inputs are coded rows ([Batch]): categorical codes, raw dense values and
// content vectors, as docs/ENGINE.md lists. The context side (the user's
// sequence encoder and everything depending only on user and request time)
// runs once per context; rows name their context (request-level
// broadcasting). A row's output is bit-identical whatever the batch it is
// in and its position there.
package engine
