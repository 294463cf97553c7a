package engine

import (
	"github.com/tandemml/tandem/config"
	"github.com/tandemml/tandem/gemm"
)

// Worker is one goroutine's scratch: use one per goroutine (a model is safe
// for concurrent use, a Worker is not). Its buffers grow to the largest
// batch run on it and are reused.
type Worker struct {
	a arena
	g gemm.Buf
	// trace, when set (L1User.Trace), receives named activations.
	trace TraceFunc
}

// A TraceFunc receives one named activation of a traced run: rows × cols,
// row-major, in a fresh slice the callee may keep. The sequence encoder's
// activations ("seq.tokens" … "seq.layer.<i>.ln2") hold only real events,
// stacked context after context (Σ SeqLen rows); the others hold one row
// per context.
type TraceFunc func(name string, rows, cols int, v []float32)

// emit hands rows × cols of v (row stride ld) to the trace, if any.
func (w *Worker) emit(name string, rows, cols, ld int, v []float32) {
	if w.trace == nil || name == "" {
		return
	}
	out := make([]float32, rows*cols)
	for r := range rows {
		copy(out[r*cols:(r+1)*cols], v[r*ld:r*ld+cols])
	}
	w.trace(name, rows, cols, out)
}

// NewWorker returns an empty worker.
func NewWorker() *Worker { return &Worker{} }

// features are the config's feature lists split by kind, in config order
// (the order the exports' input blocks use).
type features struct {
	userCats, adCats, context []config.Feature
	userDense, adDense        []string
	pretrained, content       int
}

// names lists the feature names of each input block.
func (f *features) names(userContext []config.Feature) InputNames {
	n := InputNames{UserDense: f.userDense, AdDense: f.adDense}
	for _, c := range f.userCats {
		n.UserCats = append(n.UserCats, c.Name)
	}
	for _, c := range f.context {
		n.Context = append(n.Context, c.Name)
	}
	for _, c := range f.adCats {
		n.AdCats = append(n.AdCats, c.Name)
	}
	for _, c := range userContext {
		n.UserContext = append(n.UserContext, c.Name)
	}
	return n
}

func splitFeatures(cfg *config.Config) features {
	var f features
	for _, ft := range cfg.Features.User {
		switch ft.Kind {
		case config.KindCategorical:
			f.userCats = append(f.userCats, ft)
		case config.KindDense:
			f.userDense = append(f.userDense, ft.Name)
		case config.KindEmbedding:
			f.pretrained = ft.Dim
		}
	}
	for _, ft := range cfg.Features.Ad {
		switch ft.Kind {
		case config.KindCategorical:
			f.adCats = append(f.adCats, ft)
		case config.KindDense:
			f.adDense = append(f.adDense, ft.Name)
		}
	}
	for _, ft := range cfg.Features.Item {
		if ft.Kind == config.KindEmbedding {
			f.content = ft.Dim
		}
	}
	for _, ft := range cfg.Features.Context {
		if ft.Kind == config.KindCategorical {
			f.context = append(f.context, ft)
		}
	}
	return f
}

// catRows is the table size of a categorical feature.
func catRows(f config.Feature) int {
	if f.HashBuckets > 0 {
		return f.HashBuckets
	}
	return len(f.Vocab) + 1
}

// tables reads prefix.emb.<name> for each feature.
func readTables(s *source, fs []config.Feature, e int) ([][]float32, []int) {
	ts := make([][]float32, len(fs))
	rows := make([]int, len(fs))
	for i, f := range fs {
		rows[i] = catRows(f)
		ts[i] = s.table("emb."+f.Name, rows[i], e)
	}
	return ts, rows
}

// gatherCats copies each table's row codes[i] into dst, one block of e
// values per table.
func gatherCats(dst []float32, tables [][]float32, codes []int32, e int) {
	for i, t := range tables {
		c := int(codes[i])
		copy(dst[i*e:(i+1)*e], t[c*e:(c+1)*e])
	}
}

func seqSpecOf(cfg *config.Config, content int) seqSpec {
	m := cfg.Model.Seq
	return seqSpec{L: cfg.Sequence.Length, Short: cfg.Sequence.ShortTerm, Dim: m.Dim, Heads: m.Heads, Layers: m.Layers,
		ActionDim: m.ActionDim, SurfaceDim: m.SurfaceDim, AgeDim: m.AgeDim, AgeBuckets: m.AgeBuckets,
		Content: content, Surfaces: len(cfg.Surfaces), Proj: m.Projection}
}
