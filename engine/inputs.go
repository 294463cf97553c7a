package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/tandemml/tandem/checkpoint"
)

// InputNames names the features of each column block of a Batch, in order.
type InputNames struct {
	UserCats    []string `json:"user_cats"`
	UserDense   []string `json:"user_dense"`
	Context     []string `json:"context"`
	AdCats      []string `json:"ad_cats"`
	AdDense     []string `json:"ad_dense"`
	UserContext []string `json:"user_context"`
}

// WriteInputs stores b as F32 tensors named as docs/ENGINE.md lists them
// (codes are exact in F32), with the feature names in
// __metadata__["tandem.inputs"]: the file tools/torchref reads. kind is
// "l2", "l1.user" or "l1.ad" and selects the fields written.
func WriteInputs(path string, b *Batch, d Dims, kind string) error {
	var ts []checkpoint.Tensor
	f := func(name string, v []float32, shape ...int) {
		ts = append(ts, checkpoint.Tensor{Name: name, DType: checkpoint.F32, Shape: shape, Data: v})
	}
	i := func(name string, v []int32, shape ...int) { f(name, ints32(v), shape...) }
	u, n, l := b.U, b.N, d.L
	if kind == "l1.ad" {
		i("ad.cats", b.AdCats, n, d.AdCats)
		f("ad.content", b.AdContent, n, d.Content)
		f("ad.dense", b.AdDense, n, d.AdDense)
	} else {
		i("user.cats", b.UserCats, u, d.UserCats)
		f("user.dense", b.UserDense, u, d.UserDense)
		f("user.pretrained", b.Pretrained, u, d.Pretrained)
		i("seq.len", b.SeqLen, u)
		f("seq.content", b.SeqContent, u, l, d.Content)
		oov := make([]float32, len(b.SeqOOV))
		for k, v := range b.SeqOOV {
			oov[k] = float32(v)
		}
		f("seq.oov", oov, u, l)
		i("seq.action", b.SeqAction, u, l)
		i("seq.surface", b.SeqSurface, u, l)
		i("seq.age", b.SeqAge, u, l)
	}
	switch kind {
	case "l1.user":
		i("user.context", b.UserContext, u, len(d.UserContextRows))
	case "l2":
		i("row.ctx", b.Ctx, n)
		i("row.context", b.Context, n, d.Context)
		f("row.context_item", b.ContextItem, n, d.Content)
		i("row.ad_cats", b.AdCats, n, d.AdCats)
		f("row.ad_content", b.AdContent, n, d.Content)
		f("row.ad_dense", b.AdDense, n, d.AdDense)
		i("row.view", b.View, n)
	}
	names, _ := json.Marshal(d.Names)
	return checkpoint.Write(path, ts, map[string]string{"tandem.inputs": string(names)})
}

func ints32(v []int32) []float32 {
	out := make([]float32, len(v))
	for k, x := range v {
		out[k] = float32(x)
	}
	return out
}

// RandomBatch returns u contexts and n rows of valid random inputs for
// dims: sequence lengths drawn from 0..L (both ends included when u ≥ 2),
// some events with unknown items, codes within their tables, rows spread
// over the contexts. full makes every sequence L long (benchmarks).
func RandomBatch(d Dims, u, n int, full bool, seed uint64) *Batch {
	rng := rand.New(rand.NewPCG(seed, 0x726e64))
	l := d.L
	b := &Batch{U: u, N: n}
	codes := func(k int, sizes []int) []int32 {
		out := make([]int32, k*len(sizes))
		for i := range out {
			out[i] = int32(rng.IntN(sizes[i%len(sizes)]))
		}
		return out
	}
	vals := func(k int, scale float64) []float32 {
		out := make([]float32, k)
		for i := range out {
			out[i] = float32(rng.NormFloat64() * scale)
		}
		return out
	}
	b.UserCats = codes(u, d.UserCatRows)
	b.UserDense = vals(u*d.UserDense, 2)
	b.Pretrained = vals(u*d.Pretrained, 0.3)
	if len(d.UserContextRows) > 0 {
		b.UserContext = codes(u, d.UserContextRows)
	}
	if l > 0 {
		b.SeqLen = make([]int32, u)
		for c := range b.SeqLen {
			switch {
			case full || c == 1:
				b.SeqLen[c] = int32(l)
			case c == 0:
				b.SeqLen[c] = 0
			default:
				b.SeqLen[c] = int32(rng.IntN(l + 1))
			}
		}
		b.SeqContent = vals(u*l*d.Content, 0.3)
		b.SeqOOV = make([]uint8, u*l)
		b.SeqAction = make([]int32, u*l)
		b.SeqSurface = make([]int32, u*l)
		b.SeqAge = make([]int32, u*l)
		for c := 0; c < u; c++ {
			for j := 0; j < l; j++ {
				k := c*l + j
				if j >= int(b.SeqLen[c]) {
					clear(b.SeqContent[k*d.Content : (k+1)*d.Content])
					continue
				}
				if rng.IntN(10) == 0 {
					b.SeqOOV[k] = 1
					clear(b.SeqContent[k*d.Content : (k+1)*d.Content])
				}
				b.SeqAction[k] = int32(rng.IntN(d.Actions))
				b.SeqSurface[k] = int32(rng.IntN(d.Surfaces))
				b.SeqAge[k] = int32(min(j/2, d.AgeBuckets-1))
			}
		}
	}
	b.Ctx = make([]int32, n)
	for r := range b.Ctx {
		b.Ctx[r] = int32(r * max(u, 1) / max(n, 1))
	}
	if d.Context > 0 {
		b.Context = codes(n, d.ContextRows)
	}
	b.ContextItem = vals(n*d.Content, 0.3)
	b.AdCats = codes(n, d.AdCatRows)
	b.AdContent = vals(n*d.Content, 0.3)
	b.AdDense = vals(n*d.AdDense, 2)
	b.View = make([]int32, n)
	for r := range b.View {
		b.View[r] = int32(rng.IntN(max(d.Views, 1)))
	}
	return b
}

// ReadOutputs reads a tensor of the given shape from a safetensors file
// (tools/torchref's output).
func ReadOutputs(path, name string, shape ...int) ([]float32, error) {
	f, err := checkpoint.Read(path)
	if err != nil {
		return nil, err
	}
	v, err := f.Get(name, shape...)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return v, nil
}
