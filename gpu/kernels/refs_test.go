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
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/tandemml/tandem/bf16"
	"github.com/tandemml/tandem/kernel"
)

// TestNamesMatchSource: Names lists exactly the KERNEL( definitions, and
// the embedded PTX has an entry for each and calls nothing external.
func TestNamesMatchSource(t *testing.T) {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^KERNEL\((\w+),`).FindAllStringSubmatch(Source(), -1) {
		names = append(names, m[1])
	}
	if !slices.Equal(names, Names()) {
		t.Fatalf("kernels.cu defines %v, Names() lists %v", names, Names())
	}
	ptx := string(PTX())
	for _, n := range names {
		if !strings.Contains(ptx, ".entry "+n+"(") {
			t.Errorf("the PTX has no entry %s", n)
		}
	}
	if strings.Contains(ptx, ".extern") {
		t.Error("the PTX calls an external function (no libdevice is linked)")
	}
}

// TestPTXCurrent regenerates the PTX with clang-16 and compares it with
// the committed file: the compile check of the kernel source.
func TestPTXCurrent(t *testing.T) {
	clang, err := exec.LookPath("clang-16")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("clang-16 is required in CI (apt-get install clang-16)")
		}
		t.Skip("no clang-16")
	}
	out := filepath.Join(t.TempDir(), "kernels.ptx")
	cmd := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", "--cuda-gpu-arch=sm_80", "-S", "-O3", "-o", out, "kernels.cu")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang-16: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, PTX()) {
		t.Fatal("kernels.ptx is stale: run go generate ./gpu/kernels")
	}
}

// host is kernels.cu compiled for the host with its launcher.
type hostC struct {
	launch func(name string, grid, block *[3]uint32, params unsafe.Pointer, size uintptr) int32
	sizeof func(name string) uintptr
}

func hostLib(t *testing.T) *hostC {
	t.Helper()
	cc := ""
	for _, c := range []string{"cc", "gcc", "clang"} {
		if p, err := exec.LookPath(c); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		t.Skip("no C compiler")
	}
	lib := filepath.Join(t.TempDir(), "kernels.so")
	if msg, err := exec.Command(cc, "-shared", "-fPIC", "-O2", "-ffp-contract=off", "-o", lib, "host.c", "-lm").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, msg)
	}
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	var x hostC
	purego.RegisterLibFunc(&x.launch, h, "tdm_host_launch")
	purego.RegisterLibFunc(&x.sizeof, h, "tdm_host_sizeof")
	return &x
}

// mem is host memory outside the Go heap, addressed like device memory.
type mem struct {
	t    *testing.T
	maps [][]byte
}

func (m *mem) alloc(bytes int) []byte {
	b, err := syscall.Mmap(-1, 0, max(bytes, 8), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		m.t.Fatal(err)
	}
	m.maps = append(m.maps, b)
	m.t.Cleanup(func() { syscall.Munmap(b) })
	return b
}

func (m *mem) floats(v []float32) (uint64, []float32) {
	b := m.alloc(4 * len(v))
	f := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(v))
	copy(f, v)
	return uint64(uintptr(unsafe.Pointer(&b[0]))), f
}

func (m *mem) ints(v []int32) (uint64, []int32) {
	b := m.alloc(4 * len(v))
	f := unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(v))
	copy(f, v)
	return uint64(uintptr(unsafe.Pointer(&b[0]))), f
}

func (h *hostC) run(t *testing.T, k Kernel) {
	t.Helper()
	grid, block := k.Dims()
	p := k.Bytes()
	if rc := h.launch(k.Name(), &grid, &block, unsafe.Pointer(&p[0]), uintptr(len(p))); rc != 0 {
		t.Fatalf("%s: launch returned %d", k.Name(), rc)
	}
}

// TestStructSizes: every Go parameter struct has its C struct's size, and
// the launcher refuses unknown names and wrong sizes.
func TestStructSizes(t *testing.T) {
	h := hostLib(t)
	ks := []Kernel{&EmbedGather{}, &CopyCols{}, &BNApply{}, &SeqTokens{}, &AddPos{}, &MaskedSoftmax{}, &AddLayerNorm{},
		&SeqSummary{}, &CrossCombine{}, &MMoECombine{}, &ToBF16{}, &RowDot{}, &Eligible{}, &TopK{}}
	if len(ks) != len(Names()) {
		t.Fatalf("%d structs for %d kernels", len(ks), len(Names()))
	}
	for _, k := range ks {
		if got, want := uintptr(len(k.Bytes())), h.sizeof(k.Name()); got != want {
			t.Errorf("%s: Go struct %d bytes, C struct %d", k.Name(), got, want)
		}
	}
	var g [3]uint32
	p := make([]byte, 64)
	if rc := h.launch("tdm_nope", &g, &g, unsafe.Pointer(&p[0]), 8); rc != 1 {
		t.Errorf("unknown kernel: %d, want 1", rc)
	}
	if rc := h.launch("tdm_add_pos", &g, &g, unsafe.Pointer(&p[0]), 3); rc != 2 {
		t.Errorf("wrong size: %d, want 2", rc)
	}
}

// TestKernelsMatchReferences runs kernels through the host emulation and
// compares them with their Go references, and the references with the
// CPU engine's kernels.
func TestKernelsMatchReferences(t *testing.T) {
	h := hostLib(t)
	m := &mem{t: t}
	rng := rand.New(rand.NewPCG(1, 2))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}

	// Masked softmax: empty sequences, full ones and the rows between.
	const L, B, heads = 6, 4, 2
	lens := []int32{0, L, 3, 1}
	sv := randv(heads * B * L * L)
	sp, sdev := m.floats(sv)
	lp, _ := m.ints(lens)
	h.run(t, &MaskedSoftmax{S: sp, Lens: lp, Rows: heads * B * L, L: L, B: B})
	want := slices.Clone(sv)
	RefMaskedSoftmax(want, lens, heads*B*L, L, B)
	near(t, "masked softmax", sdev, want, 1e-6)
	// The reference equals the engine's softmax over the real keys.
	r0 := (2*L + 1) * L // context 2, query 1
	eng := slices.Clone(sv[r0 : r0+3])
	kernel.Softmax(eng)
	near(t, "reference vs kernel.Softmax", want[r0:r0+3], eng, 1e-6)

	// Add + layer norm.
	const rows, d = 5, 16
	y, x := randv(rows*d), randv(rows*d)
	g, bb := randv(d), randv(d)
	yp, ydev := m.floats(y)
	xp, _ := m.floats(x)
	gp, _ := m.floats(g)
	bp, _ := m.floats(bb)
	h.run(t, &AddLayerNorm{Y: yp, X: xp, G: gp, Bias: bp, Rows: rows, D: d, Eps: 1e-5})
	ref := slices.Clone(y)
	RefAddLayerNorm(ref, x, g, bb, rows, d, 1e-5)
	near(t, "add layer norm", ydev, ref, 1e-5)
	sum := slices.Clone(y)
	kernel.Add(sum, x)
	kernel.LayerNorm(sum, sum, d, g, bb, 1e-5)
	near(t, "reference vs kernel.LayerNorm", ref, sum, 1e-6)

	// bf16: exact, NaN included.
	src := append(randv(30), float32(math.NaN()), float32(math.Inf(1)), 3.3895314e38)
	srcp, _ := m.floats(src)
	db := m.alloc(2 * len(src))
	h.run(t, &ToBF16{Dst: uint64(uintptr(unsafe.Pointer(&db[0]))), Src: srcp, Rows: 1, Cols: int32(len(src)), Ldd: int32(len(src)), Lds: int32(len(src))})
	got := unsafe.Slice((*uint16)(unsafe.Pointer(&db[0])), len(src))
	for i, f := range src {
		if got[i] != bf16.FromFloat32(f) {
			t.Errorf("bf16(%v) = %#x, want %#x", f, got[i], bf16.FromFloat32(f))
		}
	}

	// Top-k in several stages with a mask, ties and fewer candidates than k.
	const n, k, chunk = 5000, 20, 64
	vals := randv(2 * n)
	for i := 0; i < 2*n; i += 97 {
		vals[i] = 1.5 // ties
	}
	mask := make([]int32, 2*((n+31)/32))
	for i := range mask {
		mask[i] = int32(rng.Uint32())
	}
	mask[(n+31)/32] = 0 // query 1 loses its first 32 ids
	vp, _ := m.floats(vals)
	mp, _ := m.ints(mask)
	stages := TopKStages(n, k, chunk)
	if len(stages) < 2 {
		t.Fatalf("stages %v: want a multi-stage reduction", stages)
	}
	w := stages[0].Chunks * k
	var outV [2][]float32
	var outI [2][]int32
	var pv, pi [2]uint64
	for i := range 2 {
		pv[i], outV[i] = m.floats(make([]float32, 2*w))
		pi[i], outI[i] = m.ints(make([]int32, 2*w))
	}
	src2, idx2, ldv, mk := vp, uint64(0), n, mp
	last := 0
	for i, st := range stages {
		o := i % 2
		h.run(t, &TopK{OutVal: pv[o], OutIdx: pi[o], Val: src2, Idx: idx2, Mask: mk, Queries: 2, N: int32(st.N), Ldv: int32(ldv),
			Ldm: int32((n + 31) / 32), Chunk: chunk, K: k, Ldo: int32(st.Chunks * k)})
		src2, idx2, ldv, mk, last = pv[o], pi[o], st.Chunks*k, 0, o
	}
	for q := range 2 {
		type c struct {
			v  float32
			id int32
		}
		var all []c
		for id := range n {
			if uint32(mask[q*((n+31)/32)+id>>5])>>(id&31)&1 != 0 {
				all = append(all, c{vals[q*n+id], int32(id)})
			}
		}
		slices.SortFunc(all, func(a, b c) int {
			if a.v != b.v {
				if a.v > b.v {
					return -1
				}
				return 1
			}
			return int(a.id - b.id)
		})
		for j := range k {
			gv, gi := outV[last][q*k+j], outI[last][q*k+j]
			if gi != all[j].id || gv != all[j].v {
				t.Fatalf("query %d rank %d: (%v, %d), want (%v, %d)", q, j, gv, gi, all[j].v, all[j].id)
			}
		}
	}
}

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*max(1, math.Abs(float64(want[i])))) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}
