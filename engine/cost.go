package engine

// MACs counts the multiply-adds of the Linear layers (the GEMMs) that
// running b costs: benchmarks turn it into GFLOP/s. Attention, softmax and
// the other row kernels are not counted.
func (m *L2) MACs(b *Batch) int64 {
	tot := seqEvents(b)
	var n int64
	if !m.logistic {
		n += m.seq.macs(tot, int64(b.U))
		n += macs(int64(b.N), m.taQ) + macs(tot, m.taK, m.taV)
		n += m.trunk.macs(int64(b.N))
	}
	for _, tw := range m.towers {
		if tw != nil {
			n += macs(int64(b.N), tw.mlp...) + macs(int64(b.N), tw.out)
		}
	}
	return n
}

// MACs counts the Linear multiply-adds of running b through the tower.
func (m *L1User) MACs(b *Batch) int64 {
	u := int64(b.U)
	n := m.seq.macs(seqEvents(b), u) + m.trunk.macs(u)
	for _, h := range m.heads {
		if h != nil {
			n += macs(u, h)
		}
	}
	return n
}

// MACs counts the Linear multiply-adds of running b through the tower.
func (m *L1Ad) MACs(b *Batch) int64 {
	r := int64(b.N)
	n := macs(r, m.mlp...)
	if m.cross != nil {
		n += macs(r, m.cross)
	}
	for _, h := range m.heads {
		if h != nil {
			n += macs(r, h)
		}
	}
	return n
}

func seqEvents(b *Batch) int64 {
	var tot int64
	for _, l := range b.SeqLen {
		tot += int64(l)
	}
	return tot
}

func macs(rows int64, ls ...*linear) int64 {
	var n int64
	for _, l := range ls {
		n += rows * int64(l.in) * int64(l.out)
	}
	return n
}

func (m *seqModel) macs(events, users int64) int64 {
	n := macs(events, m.token)
	for _, e := range m.layers {
		n += macs(events, e.qkv, e.out, e.ffn1, e.ffn2)
	}
	return n + macs(users, m.pool, m.cross, m.proj)
}

func (t *trunk) macs(rows int64) int64 {
	if t.arch == "mlp" {
		return macs(rows, t.mlp...)
	}
	n := macs(rows, t.first)
	for _, e := range t.experts {
		n += macs(rows, e.cross) + macs(rows, e.mlp...)
		for _, lr := range e.low {
			n += macs(rows, lr[0], lr[1])
		}
	}
	for _, g := range t.gates {
		if g != nil {
			n += macs(rows, g.mlp...) + macs(rows, g.out)
		}
	}
	return n
}

// WeightBytes is the memory the packed Linear weights hold (embedding
// tables, which bf16 leaves in fp32, are not counted).
func (m *L2) WeightBytes() int { return packedBytes(m.linears()) }

// WeightBytes is the memory the packed Linear weights hold.
func (m *L1User) WeightBytes() int { return packedBytes(m.linears()) }

// WeightBytes is the memory the packed Linear weights hold.
func (m *L1Ad) WeightBytes() int { return packedBytes(m.linears()) }

func packedBytes(big, small []*linear) int {
	n := 0
	for _, l := range append(big, small...) {
		n += l.p.Bytes()
	}
	return n
}
