package config

import (
	"fmt"
	"slices"
)

// Model architectures. ArchMMoEDCN is the product model; the others are the
// baselines it must beat, built by the same code.
const (
	ArchMMoEDCN  = "mmoe_dcn" // experts of cross layers + MLP, mixed by MLP gates
	ArchMLP      = "mlp"      // the same inputs through a plain MLP trunk
	ArchLogistic = "logistic" // a logistic regression on the raw features (L2 only)
)

// Calibration modes for L2.
const (
	CalibSlice  = "slice"  // per surface × view type × task, shrunk to the surface fit
	CalibGlobal = "global" // one fit per task (the baseline)
)

// Model holds the model hyperparameters. It is not part of the schema: the
// same data trains any of them.
type Model struct {
	// EmbedDim is the width of every categorical embedding.
	EmbedDim int `yaml:"embed_dim" json:"embed_dim"`
	// BNClamp (c) and BNVarMin (v_min) shape the Resilient BatchNorm of
	// dense features; BNMomentum is the EMA rate of its running statistics.
	BNClamp    float64 `yaml:"bn_clamp" json:"bn_clamp"`
	BNVarMin   float64 `yaml:"bn_var_min" json:"bn_var_min"`
	BNMomentum float64 `yaml:"bn_momentum" json:"bn_momentum"`

	Seq SeqModel `yaml:"seq" json:"seq"`
	L2  L2Model  `yaml:"l2" json:"l2"`
	L1  L1Model  `yaml:"l1" json:"l1"`
}

// SeqModel shapes the user-action-sequence encoder.
type SeqModel struct {
	Dim        int `yaml:"dim" json:"dim"`               // d, token width
	Heads      int `yaml:"heads" json:"heads"`           // attention heads; d divisible by heads
	Layers     int `yaml:"layers" json:"layers"`         // post-LN Transformer layers
	ActionDim  int `yaml:"action_dim" json:"action_dim"` // E_act width
	SurfaceDim int `yaml:"surface_dim" json:"surface_dim"`
	AgeDim     int `yaml:"age_dim" json:"age_dim"`
	AgeBuckets int `yaml:"age_buckets" json:"age_buckets"` // buckets of log2(1+Δt/60 s), the last open-ended
	Projection int `yaml:"projection" json:"projection"`   // p, the projected user vector width
}

// Trunk shapes an MMoE-DCN (or plain MLP) block.
type Trunk struct {
	Arch          string `yaml:"arch" json:"arch"`
	Experts       int    `yaml:"experts" json:"experts"`
	ExpertDim     int    `yaml:"expert_dim" json:"expert_dim"`           // D
	LowRank       int    `yaml:"low_rank" json:"low_rank"`               // r
	LowRankLayers int    `yaml:"low_rank_layers" json:"low_rank_layers"` // ≥ 1
	ExpertMLP     []int  `yaml:"expert_mlp" json:"expert_mlp"`           // ReLU widths after the cross layers
	GateMLP       []int  `yaml:"gate_mlp" json:"gate_mlp"`               // hidden widths of each task's gate
}

// L2Model is the unified multi-surface engagement model.
type L2Model struct {
	Trunk `yaml:",inline" json:",inline"`
	// TowerMLP is each surface × task tower's hidden widths.
	TowerMLP []int `yaml:"tower_mlp" json:"tower_mlp"`
	// PerSurface trains one model per surface on its own data (baseline).
	PerSurface  bool   `yaml:"per_surface" json:"per_surface"`
	Calibration string `yaml:"calibration" json:"calibration"`
}

// L1Model is the two-tower retrieval model.
type L1Model struct {
	User Trunk `yaml:"user" json:"user"`
	// AdMLP is the ad tower's hidden widths after its cross layer (or, for
	// arch mlp, instead of it).
	AdArch string `yaml:"ad_arch" json:"ad_arch"`
	AdMLP  []int  `yaml:"ad_mlp" json:"ad_mlp"`
	// OutDim is d, the width of u_t and a_t.
	OutDim int `yaml:"out_dim" json:"out_dim"`
	// Distill trains L1 on a 2-fold L2 teacher's calibrated probabilities
	// over the distillation rows (impressions, logged candidates, random
	// eligible ads) instead of on impression labels.
	Distill bool `yaml:"distill" json:"distill"`
	// ByProduct trains one L1 per ad product (routes "<product>") instead of
	// the config's routing table.
	ByProduct bool `yaml:"by_product" json:"by_product"`
}

// Optimizers.
const (
	OptAdam    = "adam"
	OptAdagrad = "adagrad"
)

// Train holds training settings.
type Train struct {
	Batch     int     `yaml:"batch" json:"batch"`
	Optimizer string  `yaml:"optimizer" json:"optimizer"`
	LR        float64 `yaml:"lr" json:"lr"`
	EmbedLR   float64 `yaml:"embed_lr" json:"embed_lr"`
	// WarmupSteps ramps the rate up linearly; after warm-up it decays by
	// Decay per epoch.
	WarmupSteps int     `yaml:"warmup_steps" json:"warmup_steps"`
	Decay       float64 `yaml:"decay" json:"decay"`
	Epochs      int     `yaml:"epochs" json:"epochs"`
	// Patience stops training after this many epochs without a better
	// validation log loss (the best weights are kept).
	Patience int `yaml:"patience" json:"patience"`
	// SeqDropProb and SeqDropMaxS: training-time sequence masking drops the
	// events in [t−w, t), w ~ U(0, SeqDropMaxS), with this probability.
	SeqDropProb float64 `yaml:"seq_drop_prob" json:"seq_drop_prob"`
	SeqDropMaxS float64 `yaml:"seq_drop_max_s" json:"seq_drop_max_s"`
	// ShuffleWindow is how many requests are shuffled together.
	ShuffleWindow int `yaml:"shuffle_window" json:"shuffle_window"`
	// CheckpointEvery writes a resume checkpoint every this many steps (0: only at epoch ends).
	CheckpointEvery int `yaml:"checkpoint_every" json:"checkpoint_every"`
	// MaxSteps ends each epoch after this many steps (0: no cap); the demo
	// uses it to fit its time budget while staying deterministic.
	MaxSteps int `yaml:"max_steps" json:"max_steps"`
}

func (c *Config) validateModel(p *problems) {
	m := c.Model
	pos := func(path string, v int) {
		if v <= 0 {
			p.add(path, "is %d, want > 0", v)
		}
	}
	pos("model.embed_dim", m.EmbedDim)
	if m.BNClamp <= 0 {
		p.add("model.bn_clamp", "is %g, want > 0", m.BNClamp)
	}
	if m.BNVarMin <= 0 {
		p.add("model.bn_var_min", "is %g, want > 0", m.BNVarMin)
	}
	if m.BNMomentum <= 0 || m.BNMomentum > 1 {
		p.add("model.bn_momentum", "is %g, want in (0, 1]", m.BNMomentum)
	}
	s := m.Seq
	pos("model.seq.dim", s.Dim)
	pos("model.seq.heads", s.Heads)
	pos("model.seq.layers", s.Layers)
	pos("model.seq.action_dim", s.ActionDim)
	pos("model.seq.surface_dim", s.SurfaceDim)
	pos("model.seq.age_dim", s.AgeDim)
	pos("model.seq.age_buckets", s.AgeBuckets)
	pos("model.seq.projection", s.Projection)
	if s.Heads > 0 && s.Dim%s.Heads != 0 {
		p.add("model.seq.heads", "%d does not divide dim %d", s.Heads, s.Dim)
	}
	validateTrunk(p, "model.l2", m.L2.Trunk, true)
	validateWidths(p, "model.l2.tower_mlp", m.L2.TowerMLP)
	if !slices.Contains([]string{CalibSlice, CalibGlobal}, m.L2.Calibration) {
		p.add("model.l2.calibration", "is %q, want %s or %s", m.L2.Calibration, CalibSlice, CalibGlobal)
	}
	validateTrunk(p, "model.l1.user", m.L1.User, false)
	if !slices.Contains([]string{ArchMMoEDCN, ArchMLP}, m.L1.AdArch) {
		p.add("model.l1.ad_arch", "is %q, want %s or %s", m.L1.AdArch, ArchMMoEDCN, ArchMLP)
	}
	validateWidths(p, "model.l1.ad_mlp", m.L1.AdMLP)
	pos("model.l1.out_dim", m.L1.OutDim)

	t := c.Train
	pos("train.batch", t.Batch)
	if t.Batch > 0 && t.Batch < 16 {
		p.add("train.batch", "is %d, want ≥ 16", t.Batch)
	}
	if t.Optimizer != OptAdam && t.Optimizer != OptAdagrad {
		p.add("train.optimizer", "is %q, want %s or %s", t.Optimizer, OptAdam, OptAdagrad)
	}
	if !(t.LR > 0) {
		p.add("train.lr", "is %g, want > 0", t.LR)
	}
	if !(t.EmbedLR > 0) {
		p.add("train.embed_lr", "is %g, want > 0", t.EmbedLR)
	}
	if t.WarmupSteps < 0 {
		p.add("train.warmup_steps", "is %d, want ≥ 0", t.WarmupSteps)
	}
	if !(t.Decay > 0 && t.Decay <= 1) {
		p.add("train.decay", "is %g, want in (0, 1]", t.Decay)
	}
	pos("train.epochs", t.Epochs)
	pos("train.patience", t.Patience)
	if t.SeqDropProb < 0 || t.SeqDropProb > 1 {
		p.add("train.seq_drop_prob", "is %g, want in [0, 1]", t.SeqDropProb)
	}
	if t.SeqDropMaxS < 0 {
		p.add("train.seq_drop_max_s", "is %g, want ≥ 0", t.SeqDropMaxS)
	}
	pos("train.shuffle_window", t.ShuffleWindow)
	if t.MaxSteps < 0 {
		p.add("train.max_steps", "is %d, want ≥ 0", t.MaxSteps)
	}
	if t.CheckpointEvery < 0 {
		p.add("train.checkpoint_every", "is %d, want ≥ 0", t.CheckpointEvery)
	}
}

func validateTrunk(p *problems, path string, t Trunk, logistic bool) {
	archs := []string{ArchMMoEDCN, ArchMLP}
	if logistic {
		archs = append(archs, ArchLogistic)
	}
	if !slices.Contains(archs, t.Arch) {
		p.add(path+".arch", "is %q, want one of %v", t.Arch, archs)
	}
	if t.Arch == ArchLogistic {
		return
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"experts", t.Experts}, {"expert_dim", t.ExpertDim}, {"low_rank", t.LowRank}, {"low_rank_layers", t.LowRankLayers}} {
		if f.v <= 0 {
			p.add(path+"."+f.name, "is %d, want > 0", f.v)
		}
	}
	validateWidths(p, path+".expert_mlp", t.ExpertMLP)
	validateWidths(p, path+".gate_mlp", t.GateMLP)
}

func validateWidths(p *problems, path string, w []int) {
	for i, v := range w {
		if v <= 0 {
			p.add(fmt.Sprintf("%s[%d]", path, i), "is %d, want > 0", v)
		}
	}
}
