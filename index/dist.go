package index

// The distance kernels. Stored rows and prepared queries are padded with
// zeros to a multiple of 8 floats (the stride), so every kernel here works
// on whole blocks of 8 and needs no tail handling.
//
// L2 graphs use squared distances formed from the differences, as hnswlib
// does: exact enough that neighbours at nearly equal distances keep their
// order. The other metrics use inner products; their distance is
// ‖q‖² + ‖a‖² − 2⟨q,a⟩ with ‖a‖² stored per row (1 for Cosine, N² for
// InnerProduct, 0 for RawIP, which leaves −2⟨q,a⟩).

// rowAt returns a pointer to the first float of row id. The slice
// expression checks that the whole row lies inside vecs, so a bad id
// panics here rather than letting the assembly read out of bounds.
func rowAt(vecs []float32, id int32, stride int) *float32 {
	o := int(id) * stride
	return &vecs[o : o+stride : o+stride][0]
}

// dists sets out[i] to the distance between the prepared query qv (squared
// norm qn) and node ids[i]; len(out) ≥ len(ids).
func (g *Graph) dists(out, qv []float32, qn float32, ids []int32) {
	if g.metric == L2 {
		rowsIdx(out, qv, g.vecs, ids, g.stride, true)
		return
	}
	rowsIdx(out, qv, g.vecs, ids, g.stride, false)
	norms := g.norms
	for i, id := range ids {
		out[i] = qn + norms[id] - 2*out[i]
	}
}

// dist is the distance between the prepared query and node id.
func (g *Graph) dist(qv []float32, qn float32, id int32) float32 {
	if g.metric == L2 {
		return l2(qv, g.row(id))
	}
	return qn + g.norms[id] - 2*dot(qv, g.row(id))
}

// pairDist is the distance between stored nodes a and b.
func (g *Graph) pairDist(a, b int32) float32 {
	if g.metric == L2 {
		return l2(g.row(a), g.row(b))
	}
	return g.norms[a] + g.norms[b] - 2*dot(g.row(a), g.row(b))
}

// rowsIdx sets out[i] to ⟨q, row ids[i]⟩, or to ‖q − row ids[i]‖² when
// sq, for every i < len(ids): rows of stride floats in vecs, len(q) ≥
// stride, stride a positive multiple of 8. With the assembly it handles
// four rows per pass and prefetches the next four while it does.
func rowsIdx(out, q, vecs []float32, ids []int32, stride int, sq bool) {
	n := len(ids)
	if n == 0 {
		return
	}
	if !useAsm {
		rowsIdxGo(out, q, vecs, ids, stride, sq)
		return
	}
	out = out[:n]
	qp := &q[:stride][0]
	a, b, c, d := group(vecs, ids, 0, stride)
	prefetch4AVX2(a, b, c, d, stride)
	for i := 0; i < n; i += 4 {
		pa, pb, pc, pd := a, b, c, d
		if i+4 < n {
			pa, pb, pc, pd = group(vecs, ids, i+4, stride)
		}
		dst := &[4]float32{}
		if i+4 <= n {
			dst = (*[4]float32)(out[i : i+4])
		}
		if sq {
			l2x4AVX2(dst, qp, a, b, c, d, pa, pb, pc, pd, stride)
		} else {
			dot4AVX2(dst, qp, a, b, c, d, pa, pb, pc, pd, stride)
		}
		if i+4 > n {
			copy(out[i:], dst[:])
		}
		a, b, c, d = pa, pb, pc, pd
	}
}

// group returns the rows of ids[i:i+4]; past the end of ids it repeats
// the row of ids[i].
func group(vecs []float32, ids []int32, i, stride int) (a, b, c, d *float32) {
	a = rowAt(vecs, ids[i], stride)
	b, c, d = a, a, a
	switch rest := len(ids) - i; {
	case rest >= 4:
		d = rowAt(vecs, ids[i+3], stride)
		fallthrough
	case rest == 3:
		c = rowAt(vecs, ids[i+2], stride)
		fallthrough
	case rest == 2:
		b = rowAt(vecs, ids[i+1], stride)
	}
	return a, b, c, d
}

// dot returns ⟨a, b⟩ over len(a) floats, a multiple of 8; len(b) ≥ len(a).
func dot(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	if useAsm {
		return dot1AVX2(&a[0], &b[:len(a)][0], len(a))
	}
	return dotGo(a, b)
}

// l2 returns ‖a−b‖² over len(a) floats, a multiple of 8; len(b) ≥ len(a).
func l2(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	if useAsm {
		return l2x1AVX2(&a[0], &b[:len(a)][0], len(a))
	}
	return l2Go(a, b)
}

// rowsIdxGo is the pure-Go twin of rowsIdx.
func rowsIdxGo(out, q, vecs []float32, ids []int32, stride int, sq bool) {
	q = q[:stride]
	for i, id := range ids {
		o := int(id) * stride
		r := vecs[o : o+stride : o+stride]
		if sq {
			out[i] = l2Go(q, r)
		} else {
			out[i] = dotGo(q, r)
		}
	}
}

// dotGo is ⟨a, b⟩ in four partial sums.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa := a[i : i+4 : i+4]
		bb := b[i : i+4 : i+4]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// l2Go is the squared Euclidean distance Σ(a−b)² in four partial sums;
// len(b) ≥ len(a). Any length.
func l2Go(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa := a[i : i+4 : i+4]
		bb := b[i : i+4 : i+4]
		d0 := aa[0] - bb[0]
		d1 := aa[1] - bb[1]
		d2 := aa[2] - bb[2]
		d3 := aa[3] - bb[3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}
