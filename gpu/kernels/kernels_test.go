package kernels

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

type host struct {
	launch func(name string, grid, block *uint32, params uintptr, size uintptr) int32
	size   func(name string) uintptr
}

func loadHost(t *testing.T) *host {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	so := filepath.Join(t.TempDir(), "host.so")
	cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-ffp-contract=off", "-o", so, "host.c", "-lm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	lib, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{}
	purego.RegisterLibFunc(&h.launch, lib, "tdm_host_launch")
	purego.RegisterLibFunc(&h.size, lib, "tdm_host_sizeof")
	return h
}

// arena hands out buffers from anonymous mappings: stable, non-Go memory.
type arena struct {
	t    *testing.T
	mem  []byte
	used int
}

func newArena(t *testing.T) *arena {
	m, err := syscall.Mmap(-1, 0, 64<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(m) })
	return &arena{t: t, mem: m}
}

func alloc[T any](a *arena, n int) []T {
	var z T
	sz := int(unsafe.Sizeof(z)) * max(n, 1)
	a.used = (a.used + 63) &^ 63
	if a.used+sz > len(a.mem) {
		a.t.Fatal("arena full")
	}
	p := unsafe.Pointer(&a.mem[a.used])
	a.used += sz
	return unsafe.Slice((*T)(p), max(n, 1))[:n:n]
}

func addr[T any](s []T) uint64 {
	if cap(s) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(s[:1]))))
}

func (h *host) run(t *testing.T, a *arena, k Kernel) {
	t.Helper()
	b := k.Bytes()
	p := alloc[byte](a, len(b))
	copy(p, b)
	g, bl := k.Dims()
	if rc := h.launch(k.Name(), &g[0], &bl[0], uintptr(addr(p)), uintptr(len(b))); rc != 0 {
		t.Fatalf("%s: rc %d", k.Name(), rc)
	}
}

func randF(a *arena, r *rand.Rand, n int) []float32 {
	s := alloc[float32](a, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func close32(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) && math.IsNaN(g) || g == w {
			continue
		}
		if math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func allKernels() []Kernel {
	return []Kernel{&EmbedGather{}, &CopyCols{}, &BNApply{}, &SeqTokens{}, &AddPos{}, &MaskedSoftmax{},
		&AddLayerNorm{}, &SeqSummary{}, &CrossCombine{}, &MMoECombine{}, &ToBF16{}, &RowDot{}, &Eligible{}, &TopK{}}
}

func TestLayoutAndErrors(t *testing.T) {
	h := loadHost(t)
	var names []string
	for _, k := range allKernels() {
		names = append(names, k.Name())
		if got := h.size(k.Name()); got != uintptr(len(k.Bytes())) {
			t.Errorf("%s: C size %d, Go %d", k.Name(), got, len(k.Bytes()))
		}
	}
	if !slices.Equal(names, Names()) {
		t.Errorf("Names() = %v, want %v", Names(), names)
	}
	if h.size("nope") != 0 {
		t.Error("unknown sizeof not 0")
	}
	a := newArena(t)
	p := alloc[byte](a, 256)
	g := [3]uint32{1, 1, 1}
	if rc := h.launch("nope", &g[0], &g[0], uintptr(addr(p)), 8); rc != 1 {
		t.Errorf("unknown kernel rc %d", rc)
	}
	if rc := h.launch("tdm_copy_cols", &g[0], &g[0], uintptr(addr(p)), 7); rc != 2 {
		t.Errorf("wrong size rc %d", rc)
	}
}

func TestSourceAndPTX(t *testing.T) {
	var src []string
	for _, m := range regexp.MustCompile(`(?m)^KERNEL\((\w+),`).FindAllStringSubmatch(Source(), -1) {
		src = append(src, m[1])
	}
	if !slices.Equal(src, Names()) {
		t.Errorf("KERNEL names %v, Names() %v", src, Names())
	}
	for _, n := range Names() {
		if !bytes.Contains(PTX(), []byte(".entry "+n+"(")) {
			t.Errorf("PTX lacks .entry %s", n)
		}
	}
	if bytes.Contains(PTX(), []byte(".extern")) {
		t.Error("PTX has .extern")
	}
}

func TestPTXRegenerates(t *testing.T) {
	clang, err := exec.LookPath("clang-16")
	if err != nil {
		t.Skip("no clang-16")
	}
	out := filepath.Join(t.TempDir(), "k.ptx")
	cmd := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib",
		"--cuda-gpu-arch=sm_80", "-S", "-O3", "-o", out, "kernels.cu")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, PTX()) {
		t.Error("kernels.ptx is stale: run go generate ./gpu/kernels")
	}
}

func TestKernelsOnHost(t *testing.T) {
	h := loadHost(t)
	a := newArena(t)
	r := rand.New(rand.NewPCG(1, 2))

	t.Run("EmbedGather", func(t *testing.T) {
		rows, fields, e, ldd, ldc := 37, 3, 5, 17, 4
		table := randF(a, r, 40*e)
		base := alloc[int32](a, fields)
		codes := alloc[int32](a, rows*ldc)
		for f := range base {
			base[f] = int32(f * 10)
		}
		for i := range codes {
			codes[i] = int32(r.IntN(10))
		}
		dst, want := alloc[float32](a, rows*ldd), make([]float32, rows*ldd)
		h.run(t, a, &EmbedGather{addr(dst), addr(codes), addr(table), addr(base), int32(rows), int32(fields), int32(e), int32(ldd), int32(ldc)})
		RefEmbedGather(want, codes, table, base, rows, fields, e, ldd, ldc)
		close32(t, "dst", dst, want, 0)
	})
	t.Run("CopyColsBF16Cross", func(t *testing.T) {
		rows, cols, ldd, lds := 300, 3, 5, 4
		src := randF(a, r, rows*lds)
		src[0], src[1] = float32(math.NaN()), float32(math.Inf(-1))
		dst, want := alloc[float32](a, rows*ldd), make([]float32, rows*ldd)
		h.run(t, a, &CopyCols{addr(dst), addr(src), int32(rows), int32(cols), int32(ldd), int32(lds), 1})
		RefCopyCols(want, src, rows, cols, ldd, lds, true)
		close32(t, "copy", dst, want, 0)
		b, wb := alloc[uint16](a, rows*ldd), make([]uint16, rows*ldd)
		src[2] = math.Float32frombits(0x3f808000)
		h.run(t, a, &ToBF16{addr(b), addr(src), int32(rows), int32(cols), int32(ldd), int32(lds)})
		RefToBF16(wb, src, rows, cols, ldd, lds)
		if !slices.Equal(b, wb) {
			t.Error("bf16 differs")
		}
		x0, x := randF(a, r, rows*lds), randF(a, r, rows*lds)
		hh := randF(a, r, rows*ldd)
		wh := slices.Clone(hh)
		h.run(t, a, &CrossCombine{addr(hh), addr(x0), addr(x), int32(rows), int32(cols), int32(ldd), int32(lds), int32(lds)})
		RefCrossCombine(wh, x0, x, rows, cols, ldd, lds, lds)
		close32(t, "cross", hh, wh, 0)
	})
	t.Run("BNApply", func(t *testing.T) {
		rows, n, ldd, ldr := 50, 7, 8, 9
		raw := randF(a, r, rows*ldr)
		raw[3] = float32(math.NaN())
		raw[4] = 1e9
		mean, sd := alloc[float64](a, n), alloc[float64](a, n)
		for j := range n {
			mean[j], sd[j] = r.NormFloat64(), 0.5+r.Float64()
		}
		w, b := randF(a, r, n), randF(a, r, n)
		dst, want := alloc[float32](a, rows*ldd), make([]float32, rows*ldd)
		h.run(t, a, &BNApply{addr(dst), addr(raw), addr(mean), addr(sd), addr(w), addr(b), int32(rows), int32(n), int32(ldd), int32(ldr), 3})
		RefBNApply(want, raw, mean, sd, w, b, rows, n, ldd, ldr, 3)
		close32(t, "bn", dst, want, 0)
	})
	t.Run("SeqTokensAddPos", func(t *testing.T) {
		rows, cd, ad, sd, gd := 40, 4, 2, 3, 1
		content := randF(a, r, rows*cd)
		oovRow, actT, surfT, ageT := randF(a, r, cd), randF(a, r, 3*ad), randF(a, r, 2*sd), randF(a, r, 5*gd)
		oov, act, surf, age := alloc[int32](a, rows), alloc[int32](a, rows), alloc[int32](a, rows), alloc[int32](a, rows)
		for i := range rows {
			oov[i], act[i], surf[i], age[i] = int32(r.IntN(3)/2), int32(r.IntN(3)), int32(r.IntN(2)), int32(r.IntN(5))
		}
		w := cd + ad + sd + gd
		dst, want := alloc[float32](a, rows*w), make([]float32, rows*w)
		h.run(t, a, &SeqTokens{addr(dst), addr(content), addr(oov), addr(act), addr(surf), addr(age), addr(oovRow), addr(actT), addr(surfT), addr(ageT),
			int32(rows), int32(cd), int32(ad), int32(sd), int32(gd)})
		RefSeqTokens(want, content, oov, act, surf, age, oovRow, actT, surfT, ageT, rows, cd, ad, sd, gd)
		close32(t, "tokens", dst, want, 0)
		pos := randF(a, r, 8*w)
		h.run(t, a, &AddPos{addr(dst), addr(pos), int32(rows), 8, int32(w)})
		RefAddPos(want, pos, rows, 8, w)
		close32(t, "pos", dst, want, 0)
	})
	t.Run("SoftmaxLayerNormSummary", func(t *testing.T) {
		b, l, d := 4, 6, 5
		lens := alloc[int32](a, b)
		copy(lens, []int32{0, 6, 3, 1})
		rows := 2 * b * l // two heads
		s := randF(a, r, rows*l)
		ws := slices.Clone(s)
		h.run(t, a, &MaskedSoftmax{addr(s), addr(lens), int32(rows), int32(l), int32(b)})
		RefMaskedSoftmax(ws, lens, rows, l, b)
		close32(t, "softmax", s, ws, 1e-5)
		y, x := randF(a, r, b*l*d), randF(a, r, b*l*d)
		g, bias := randF(a, r, d), randF(a, r, d)
		wy := slices.Clone(y)
		h.run(t, a, &AddLayerNorm{addr(y), addr(x), addr(g), addr(bias), int32(b * l), int32(d), 1e-5})
		RefAddLayerNorm(wy, x, g, bias, b*l, d, 1e-5)
		close32(t, "layernorm", y, wy, 1e-6)
		short, lds := 4, 4*d+1
		ss, pooled := alloc[float32](a, b*lds), alloc[float32](a, b*d)
		wss, wp := make([]float32, b*lds), make([]float32, b*d)
		h.run(t, a, &SeqSummary{addr(ss), addr(pooled), addr(x), addr(lens), int32(b), int32(l), int32(d), int32(short), int32(lds)})
		RefSeqSummary(wss, wp, x, lens, b, l, d, short, lds)
		close32(t, "short", ss, wss, 0)
		close32(t, "pooled", pooled, wp, 0)
	})
	t.Run("MMoERowDot", func(t *testing.T) {
		rows, ne, w, ldh, lde := 30, 3, 7, 9, 8
		es := rows * lde
		logits, experts := randF(a, r, rows*ne), randF(a, r, ne*es)
		hh, wh := alloc[float32](a, rows*ldh), make([]float32, rows*ldh)
		h.run(t, a, &MMoECombine{addr(hh), addr(logits), addr(experts), int32(rows), int32(ne), int32(w), int32(ldh), int32(lde), int32(es)})
		RefMMoECombine(wh, logits, experts, rows, ne, w, ldh, lde, es)
		close32(t, "mmoe", hh, wh, 1e-5)
		n, d := 100, 6
		u, ads := randF(a, r, 3*8), randF(a, r, 20*7)
		ids, ctx := alloc[int32](a, n), alloc[int32](a, n)
		for i := range n {
			ids[i], ctx[i] = int32(r.IntN(20)), int32(r.IntN(3))
		}
		out, want := alloc[float32](a, n), make([]float32, n)
		h.run(t, a, &RowDot{addr(out), addr(u), addr(ads), addr(ids), addr(ctx), int32(n), int32(d), 8, 7, 0.25})
		RefRowDot(want, u, ads, ids, ctx, n, d, 8, 7, 0.25)
		close32(t, "rowdot", out, want, 0)
	})
	t.Run("EligibleTopK", func(t *testing.T) {
		q, n := 3, 1000
		ldm := (n + 31) / 32
		active, surfaces, product := alloc[uint8](a, n), alloc[uint8](a, n), alloc[uint8](a, n)
		bid := randF(a, r, n)
		for i := range n {
			active[i], surfaces[i], product[i] = uint8(r.IntN(4)/3^1), uint8(r.IntN(8)), uint8(r.IntN(64))
		}
		sb, prods, minBid := alloc[uint32](a, q), alloc[uint64](a, q), randF(a, r, q)
		for i := range q {
			sb[i], prods[i] = uint32(1<<r.IntN(3)), r.Uint64()
		}
		mask, wm := alloc[uint32](a, q*ldm), make([]uint32, q*ldm)
		h.run(t, a, &Eligible{addr(mask), addr(active), addr(surfaces), addr(product), addr(bid), addr(sb), addr(prods), addr(minBid), int32(q), int32(n), int32(ldm)})
		RefEligible(wm, active, surfaces, product, bid, sb, prods, minBid, q, n, ldm)
		if !slices.Equal(mask, wm) {
			t.Fatal("eligible mask differs")
		}
		val := alloc[float32](a, q*n)
		for i := range val {
			val[i] = float32(r.IntN(50)) // many ties
		}
		val[5] = float32(math.NaN())
		k, chunk := 10, 64
		// Multi-stage through the kernels and the references side by side.
		stages := TopKStages(n, k, chunk)
		if len(stages) < 2 {
			t.Fatalf("stages %v", stages)
		}
		var inV, wV []float32 = val, slices.Clone(val)
		var inI, wI []int32
		m, wmask := mask, wm
		ldv := n
		for _, st := range stages {
			ldo := st.Chunks * k
			ov, oi := alloc[float32](a, q*ldo), alloc[int32](a, q*ldo)
			rv, ri := make([]float32, q*ldo), make([]int32, q*ldo)
			h.run(t, a, &TopK{addr(ov), addr(oi), addr(inV), addr(inI), addr(m), int32(q), int32(st.N), int32(ldv), int32(ldm), int32(chunk), int32(k), int32(ldo)})
			RefTopK(rv, ri, wV, wI, wmask, q, st.N, ldv, ldm, chunk, k, ldo)
			if !slices.Equal(oi, ri) {
				t.Fatalf("topk ids differ at stage %v", st)
			}
			close32(t, "topk", ov, rv, 0)
			inV, inI, wV, wI, ldv = ov, oi, rv, ri, ldo
			m, wmask = nil, nil
		}
		// K greater than the candidates: unfilled slots.
		ov, oi := alloc[float32](a, 8), alloc[int32](a, 8)
		h.run(t, a, &TopK{addr(ov), addr(oi), addr(val), 0, 0, 1, 3, int32(n), 0, 64, 8, 8})
		if oi[3] != -1 || !math.IsInf(float64(ov[7]), -1) || oi[0] < 0 {
			t.Errorf("short topk %v %v", ov, oi)
		}
	})
}
