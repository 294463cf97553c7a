package index

// item is a node and its distance to the current query.
type item struct {
	d  float32
	id int32
}

// less orders items by distance, then by id, so that every heap and sort
// here is fully determined by its input.
func (a item) less(b item) bool {
	return a.d < b.d || (a.d == b.d && a.id < b.id)
}

// minHeap is a binary heap with the nearest item at the root: the
// candidates still to expand.
type minHeap []item

func (h *minHeap) push(x item) {
	s := append(*h, x)
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !x.less(s[p]) {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
	*h = s
}

func (h *minHeap) pop() item {
	s := *h
	top := s[0]
	n := len(s) - 1
	x := s[n]
	s = s[:n]
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && s[r].less(s[c]) {
			c = r
		}
		if !s[c].less(x) {
			break
		}
		s[i] = s[c]
		i = c
	}
	if n > 0 {
		s[i] = x
	}
	*h = s
	return top
}

// maxHeap is a binary heap with the farthest item at the root: the best
// results found so far, whose root is the one to drop first.
type maxHeap []item

func (h *maxHeap) push(x item) {
	s := append(*h, x)
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[p].less(x) {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
	*h = s
}

// replaceTop drops the farthest item and inserts x in one sift.
func (h *maxHeap) replaceTop(x item) {
	s := *h
	n := len(s)
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && s[c].less(s[r]) {
			c = r
		}
		if !x.less(s[c]) {
			break
		}
		s[i] = s[c]
		i = c
	}
	s[i] = x
}

func (h *maxHeap) pop() item {
	s := *h
	top := s[0]
	n := len(s) - 1
	x := s[n]
	*h = s[:n]
	if n > 0 {
		h.replaceTop(x)
	}
	return top
}

// offer adds x to a heap that keeps at most k items, the k nearest.
func (h *maxHeap) offer(x item, k int) {
	if len(*h) < k {
		h.push(x)
	} else if x.less((*h)[0]) {
		h.replaceTop(x)
	}
}

// drain empties the heap into dst, nearest first, and returns it.
func (h *maxHeap) drain(dst []item) []item {
	n := len(*h)
	if cap(dst) < n {
		dst = make([]item, n)
	}
	dst = dst[:n]
	for i := n - 1; i >= 0; i-- {
		dst[i] = h.pop()
	}
	return dst
}
