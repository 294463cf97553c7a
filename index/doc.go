// Package index is an approximate nearest-neighbour index: a hierarchical
// navigable small-world graph (HNSW, Malkov and Yashunin, 2016) over
// float32 vectors, with an exact scan beside it for ground truth and for
// filters that admit few vectors.
//
// # The graph
//
// Every vector is a node. Its top layer is drawn from the exponential
// distribution of the paper, ⌊−ln U / ln M⌋, so each layer holds about 1/M
// of the nodes of the one below; U comes from a hash of the seed and the
// node's id. On layer 0 a node keeps up to 2M neighbours, above it up to M.
// A node is inserted by walking greedily down from the entry point (the
// node of the highest layer) to the node's top layer, then, on each layer
// from there to 0, running a beam search of width EfConstruction and
// linking the node to M of the results chosen by the paper's heuristic
// (Algorithm 4, as hnswlib runs it: no candidate extension, pruned
// candidates are not kept): a candidate is taken only when it is nearer to
// the new node than to every neighbour already taken, which keeps links
// pointing in different directions. The new node is linked back from each
// neighbour; a neighbour whose list is full re-selects its list with the
// same heuristic.
//
// A search walks greedily through the upper layers (beam width 1) and runs
// a beam search of width ef on layer 0: it expands the nearest unexpanded
// candidate, scores its unvisited neighbours, and keeps the ef nearest
// nodes seen; it stops when the nearest candidate left is farther than the
// farthest of those ef. The best k of them are returned.
//
// # Layout
//
// Rows live in one []float32, each padded with zeros to a multiple of 8
// floats so that the AVX2 kernels never need a tail. Layer 0 is one flat
// []int32 of fixed stride 2M+1 per node (a count, then the slots); the
// upper layers of the few nodes that have them sit in a second flat
// []int32, found through a per-node offset. There are no per-node slices or
// pointers. Unvisited neighbours of an expanded node are gathered first
// and scored together, four rows per pass of the assembly kernel, which
// prefetches the next four rows while it works; the link list of every new
// candidate is prefetched too.
//
// # Metrics
//
// L2 ranks by squared distance, computed from differences. Cosine
// normalises the vectors at build time and the query at search time and
// ranks by inner product. InnerProduct (maximum inner product search)
// appends √(N²−‖a‖²) to every vector a, N the largest norm, so that all
// vectors have norm N; with 0 appended to the query, ‖q−a‖² = ‖q‖² + N² −
// 2⟨q,a⟩, and L2 order is inner-product order. RawIP builds and searches
// with −⟨q,a⟩ directly; it is kept for comparison. The transform makes the
// problem an L2 one but leaves every query far from the sphere the vectors
// lie on, which costs recall at a given ef; measure both on real vectors.
// Results carry the squared distance for L2 and the similarity or inner
// product otherwise, best first.
//
// # Filtered search
//
// A filter admits ids. The graph search applies it inside the traversal:
// rejected nodes are expanded like the others, so the graph stays
// connected, but never enter the results, and the search goes on until it
// holds ef admitted nodes. When few ids are admitted that means exploring
// much of the graph, so the search switches to an exact scan of the
// admitted ids when that is cheaper: at once when the caller's estimate of
// the pass rate says so, or when the graph search has spent more than the
// scan would cost at the rate it has observed, or when it ends with fewer
// than k results.
//
// # Determinism and concurrency
//
// Build with one thread inserts the nodes in id order and is a function of
// the vectors and the Config: the same seed gives the same bytes from
// MarshalBinary. With more threads nodes are inserted concurrently, each
// node's lists guarded by its own mutex (one lock held at a time), and the
// graph depends on scheduling; its quality does not. A built or decoded
// Graph is never modified: any number of goroutines may search it at once
// without locks, each with its own Searcher, whose visited marks are
// versioned by an epoch counter so that nothing is cleared between
// searches, and which allocates nothing once it has grown.
//
// # Encoding
//
// MarshalBinary writes a compact versioned format with a CRC-32C
// checksum (see codec.go); the decoder checks every field, so that corrupt
// input gives an error, never a panic or a graph that could misbehave.
//
// # Assembly
//
// The distance kernels run AVX2+FMA assembly on amd64 processors that have
// both; elsewhere, and with the noasm build tag, pure-Go twins run. The two
// differ in rounding only.
package index
