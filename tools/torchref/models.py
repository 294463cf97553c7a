"""PyTorch modules for tandem's model exports.

Read this next to docs/CHECKPOINT.md (every tensor name and shape) and SYSTEM.md
section 2 (the math). Each model is built from an export's `tandem.config` (the
whole training config) and `tandem.model` metadata; `load_state` maps the
export's tensor names onto the parameters and buffers, strictly (a missing or
extra tensor, or a wrong shape, is an error), and `state` gives them back under
the same names.

Conventions:
- A batch is a matrix of row vectors; Linear weights are stored [out, in] and
  applied as y = x W^T + b, which is exactly torch.nn.Linear.
- Sequences use the batched masked form over all L positions: position j >= len
  is a zero token (its embedding is the token bias + P_j), padded attention keys
  get -1e9 before the softmax, and padded positions never reach an output
  (keep, pool and non-empty masks). An empty sequence keeps key 0 unmasked so
  that no softmax row is all -1e9; its outputs are zeroed downstream.
- "MLP" means Linear + ReLU after every layer, the last one included; the
  layer reading an MLP (gate `out`, tower `out`, heads) has no activation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import safetensors_io

KEY_PAD = -1e9       # added to padded attention keys before the softmax
POOL_PAD = -1e4      # added to padded positions before the max-pool
LN_EPS = 1e-5        # layer norm epsilon
NUM_ACTIONS = 4      # sequence action codes: the rows of seq.emb.action
TABLE_INIT_SD = 0.05  # embedding tables start as N(0, 0.05)

KINDS = ("l2", "l1.user", "l1.ad")


# ---------------------------------------------------------------------------
# What the config says: features, sequence and trunk shapes.

def _get(config: Mapping, *path: str):
    cur = config
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            raise ValueError(f"tandem.config has no {'.'.join(path)}")
        cur = cur[key]
    return cur


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a, the hash of string values of hashed features."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@dataclass(frozen=True)
class Categorical:
    """A categorical feature: a vocab (row 0 is out-of-vocabulary) or hash buckets."""

    name: str
    rows: int
    vocab: Tuple[str, ...]
    hash_buckets: int

    @classmethod
    def from_config(cls, ft: Mapping) -> "Categorical":
        buckets = int(ft.get("hash_buckets") or 0)
        vocab = tuple(ft.get("vocab") or ())
        rows = buckets if buckets > 0 else len(vocab) + 1
        return cls(name=ft["name"], rows=rows, vocab=vocab, hash_buckets=buckets)

    def code(self, value: str) -> int:
        """The table row of a string value (CHECKPOINT.md, "Categorical codes")."""
        if self.hash_buckets > 0:
            return fnv1a64(value.encode("utf-8")) % self.hash_buckets
        return self.vocab.index(value) + 1 if value in self.vocab else 0


@dataclass(frozen=True)
class Schema:
    """The config's features, surfaces and tasks, in config order."""

    tasks: Tuple[str, ...]
    surfaces: Tuple[str, ...]
    surface_tasks: Dict[str, Tuple[str, ...]]
    surface_views: Dict[str, Tuple[str, ...]]
    surface_context: Dict[str, str]       # "none", "query" or "item"
    user_cats: Tuple[Categorical, ...]
    user_dense: Tuple[str, ...]
    pretrained_dim: int                   # the user's pretrained embedding (0: none)
    ad_cats: Tuple[Categorical, ...]
    ad_dense: Tuple[str, ...]
    content_dim: int                      # an item's content_emb
    context: Tuple[Categorical, ...]      # request context: surface, view_type, query_topic, position
    seq_length: int                       # L
    short_term: int

    @classmethod
    def from_config(cls, config: Mapping) -> "Schema":
        feats = _get(config, "features")
        user_cats, user_dense, pretrained = [], [], 0
        for ft in feats.get("user") or []:
            kind = ft.get("kind")
            if kind == "categorical":
                user_cats.append(Categorical.from_config(ft))
            elif kind == "dense":
                user_dense.append(ft["name"])
            elif kind == "embedding" and pretrained == 0:
                pretrained = int(ft["dim"])
            else:
                raise ValueError(f"tandem.config: user feature {ft.get('name')!r} of kind {kind!r} is not supported")
        ad_cats, ad_dense = [], []
        for ft in feats.get("ad") or []:
            kind = ft.get("kind")
            if kind == "categorical":
                ad_cats.append(Categorical.from_config(ft))
            elif kind == "dense":
                ad_dense.append(ft["name"])
            else:
                raise ValueError(f"tandem.config: ad feature {ft.get('name')!r} of kind {kind!r} is not supported")
        content = [ft for ft in feats.get("item") or [] if ft.get("kind") == "embedding"]
        if len(content) != 1:
            raise ValueError("tandem.config: features.item must hold exactly one embedding (content_emb)")
        context = []
        for ft in feats.get("context") or []:
            if ft.get("kind") != "categorical":
                raise ValueError(f"tandem.config: context feature {ft.get('name')!r} is not categorical")
            context.append(Categorical.from_config(ft))
        surfaces = _get(config, "surfaces")
        return cls(
            tasks=tuple(_get(config, "tasks")),
            surfaces=tuple(s["name"] for s in surfaces),
            surface_tasks={s["name"]: tuple(s.get("tasks") or ()) for s in surfaces},
            surface_views={s["name"]: tuple(v["name"] for v in s.get("view_types") or ()) for s in surfaces},
            surface_context={s["name"]: s.get("context", "none") for s in surfaces},
            user_cats=tuple(user_cats), user_dense=tuple(user_dense), pretrained_dim=pretrained,
            ad_cats=tuple(ad_cats), ad_dense=tuple(ad_dense), content_dim=int(content[0]["dim"]),
            context=tuple(context),
            seq_length=int(_get(config, "sequence", "length")),
            short_term=int(_get(config, "sequence", "short_term")),
        )

    @property
    def user_context(self) -> Tuple[Categorical, ...]:
        """The context features the L1 user tower reads (surface and view type, config order)."""
        return tuple(f for f in self.context if f.name in ("surface", "view_type"))

    def trained_tasks(self, surface_indices: Sequence[int]) -> List[bool]:
        """Per task (config order): whether one of these surfaces trains it."""
        names = [self.surfaces[i] for i in surface_indices]
        return [any(t in self.surface_tasks[s] for s in names) for t in self.tasks]


@dataclass(frozen=True)
class SeqSpec:
    length: int          # L
    short_term: int      # newest positions kept in the sequence output
    dim: int             # d
    heads: int
    layers: int
    action_dim: int
    surface_dim: int
    age_dim: int
    age_buckets: int
    projection: int      # p
    content_dim: int
    surfaces: int

    @classmethod
    def from_config(cls, config: Mapping, schema: Schema) -> "SeqSpec":
        m = _get(config, "model", "seq")
        spec = cls(length=schema.seq_length, short_term=schema.short_term, dim=int(m["dim"]),
                   heads=int(m["heads"]), layers=int(m["layers"]), action_dim=int(m["action_dim"]),
                   surface_dim=int(m["surface_dim"]), age_dim=int(m["age_dim"]),
                   age_buckets=int(m["age_buckets"]), projection=int(m["projection"]),
                   content_dim=schema.content_dim, surfaces=len(schema.surfaces))
        if spec.dim % spec.heads != 0:
            raise ValueError(f"tandem.config: model.seq.dim {spec.dim} is not divisible by {spec.heads} heads")
        if not 0 < spec.short_term <= spec.length:
            raise ValueError(f"tandem.config: sequence.short_term {spec.short_term} is not in [1, L={spec.length}]")
        return spec

    @property
    def token_in(self) -> int:
        """content_emb + action + surface + age widths."""
        return self.content_dim + self.action_dim + self.surface_dim + self.age_dim

    @property
    def out_dim(self) -> int:
        """Width of the sequence output: newest short_term positions + pool."""
        return self.short_term * self.dim + self.dim


@dataclass(frozen=True)
class TrunkSpec:
    arch: str            # "mmoe_dcn", "mlp" (or "logistic" for L2: no trunk)
    experts: int
    expert_dim: int      # D
    low_rank: int        # r
    low_rank_layers: int
    expert_mlp: Tuple[int, ...]
    gate_mlp: Tuple[int, ...]

    @classmethod
    def from_config(cls, m: Mapping) -> "TrunkSpec":
        return cls(arch=m["arch"], experts=int(m.get("experts", 0)), expert_dim=int(m.get("expert_dim", 0)),
                   low_rank=int(m.get("low_rank", 0)), low_rank_layers=int(m.get("low_rank_layers", 0)),
                   expert_mlp=tuple(m.get("expert_mlp") or ()), gate_mlp=tuple(m.get("gate_mlp") or ()))


# ---------------------------------------------------------------------------
# Inputs, already coded and as tensors (coded_inputs.py builds them).

@dataclass
class SeqBatch:
    length: torch.Tensor    # [U] long: events, newest first
    content: torch.Tensor   # [U, L, C]: content_emb per event (ignored where oov or padded)
    oov: torch.Tensor       # [U, L] bool: the item is not in the item table
    action: torch.Tensor    # [U, L] long
    surface: torch.Tensor   # [U, L] long: surface index
    age: torch.Tensor       # [U, L] long: log-age bucket


@dataclass
class UserBatch:
    """The U contexts: user features and sequences (and, for L1, the request's surface and view type)."""

    cats: torch.Tensor              # [U, user cats] long
    cat_names: List[str]
    dense: torch.Tensor             # [U, user dense]: raw values
    pretrained: torch.Tensor        # [U, P]
    seq: Optional[SeqBatch]         # None only for the logistic L2 baseline
    context: Optional[torch.Tensor] = None   # L1: [U, 2] long codes of surface and view_type
    context_names: Optional[List[str]] = None


@dataclass
class RowBatch:
    """The N scored rows of an L2 batch."""

    ctx: torch.Tensor               # [N] long: the row's context in [0, U)
    context: torch.Tensor           # [N, context cats] long
    context_names: List[str]
    context_item: torch.Tensor      # [N, C]: 0 when the request has no context item
    ad_cats: torch.Tensor           # [N, ad cats] long
    ad_cat_names: List[str]
    ad_content: torch.Tensor        # [N, C]
    ad_dense: torch.Tensor          # [N, ad dense]: raw values
    view: torch.Tensor              # [N] long: index into the surface's view types


@dataclass
class AdBatch:
    cats: torch.Tensor              # [N, ad cats] long
    cat_names: List[str]
    content: torch.Tensor           # [N, C]
    dense: torch.Tensor             # [N, ad dense]


@dataclass
class Batch:
    user: Optional[UserBatch] = None
    rows: Optional[RowBatch] = None
    ad: Optional[AdBatch] = None


# ---------------------------------------------------------------------------
# Layers.

def _linear(prefix: str, layer: nn.Linear) -> Dict[str, torch.Tensor]:
    return {prefix + ".weight": layer.weight, prefix + ".bias": layer.bias}


class Table(nn.Module):
    """An embedding table [rows, dim], exported under its own name."""

    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, dim))
        nn.init.normal_(self.weight, 0.0, TABLE_INIT_SD)
        self.sparse = False  # sparse gradients, for training with SparseAdam

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.weight, sparse=self.sparse)


class ResilientBN(nn.Module):
    """Resilient BatchNorm at serving time (batch/sparse.go, BN.Normalize, non-train branch).

    In float64: sd = sqrt(max(running_var, v_min)); x is clamped to mean +- c*sd;
    z = clamp((x - mean) / sd, +-c); NaN -> 0. Then y = weight * z + bias in the
    model's dtype. `config` holds [c, v_min].
    """

    def __init__(self, n: int, affine: bool = True):
        super().__init__()
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(n))
            self.bias = nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))
        self.register_buffer("config", torch.tensor([5.0, 1e-4]))

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = {}
        if self.affine:
            out.update({prefix + ".weight": self.weight, prefix + ".bias": self.bias})
        out.update({prefix + ".running_mean": self.running_mean, prefix + ".running_var": self.running_var,
                    prefix + ".config": self.config})
        return out

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x-hat in float64."""
        x = x.to(torch.float64)
        mean = self.running_mean.to(torch.float64)
        var = self.running_var.to(torch.float64)
        clamp = self.config[0].to(torch.float64)
        var_min = self.config[1].to(torch.float64)
        sd = torch.sqrt(torch.maximum(var, var_min))
        x = torch.minimum(torch.maximum(x, mean - clamp * sd), mean + clamp * sd)  # NaN stays NaN
        z = (x - mean) / sd
        z = torch.minimum(torch.maximum(z, -clamp), clamp)
        return z.masked_fill(torch.isnan(z), 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.normalize(x)
        if not self.affine:  # only when there are no dense features
            return z.to(x.dtype)
        return self.weight * z.to(self.weight.dtype) + self.bias


class MLP(nn.Module):
    """Linear + ReLU layers of the given widths; exported as <prefix>.<k>.*."""

    def __init__(self, in_dim: int, widths: Sequence[int]):
        super().__init__()
        dims = [in_dim, *widths]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.out_dim = dims[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.relu(layer(x))
        return x

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = {}
        for k, layer in enumerate(self.layers):
            out.update(_linear(f"{prefix}.{k}", layer))
        return out


class CrossFull(nn.Module):
    """Full-rank DCNv2 cross layer: x0 * (x W^T + b) + x."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        return _linear(prefix, self.linear)


class CrossLowRank(nn.Module):
    """Low-rank cross layer: x0 * ((x V) U^T + b) + x with U, V of shape [D, r]."""

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.u = nn.Parameter(torch.empty(dim, rank))
        self.v = nn.Parameter(torch.empty(dim, rank))
        self.bias = nn.Parameter(torch.zeros(dim))
        nn.init.xavier_uniform_(self.u)
        nn.init.xavier_uniform_(self.v)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * (torch.matmul(torch.matmul(x, self.v), self.u.t()) + self.bias) + x

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        return {prefix + ".u": self.u, prefix + ".v": self.v, prefix + ".bias": self.bias}


class Expert(nn.Module):
    """Linear(in -> D) -> one full-rank cross -> low-rank crosses -> MLP; x0 is the Linear's output."""

    def __init__(self, in_dim: int, spec: TrunkSpec):
        super().__init__()
        d = spec.expert_dim
        self.input = nn.Linear(in_dim, d)
        self.cross = CrossFull(d)
        self.low_rank = nn.ModuleList(CrossLowRank(d, spec.low_rank) for _ in range(spec.low_rank_layers))
        self.mlp = MLP(d, spec.expert_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.input(x)
        h = self.cross(x0, x0)
        for layer in self.low_rank:
            h = layer(x0, h)
        return self.mlp(h)

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = _linear(prefix + ".in", self.input)
        out.update(self.cross.exported(prefix + ".cross"))
        for l, layer in enumerate(self.low_rank):
            out.update(layer.exported(f"{prefix}.lowrank.{l}"))
        out.update(self.mlp.exported(prefix + ".mlp"))
        return out


class Gate(nn.Module):
    """softmax(out(MLP(x))) over the experts."""

    def __init__(self, in_dim: int, widths: Sequence[int], experts: int):
        super().__init__()
        self.mlp = MLP(in_dim, widths)
        self.out = nn.Linear(self.mlp.out_dim, experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(self.mlp(x)), dim=-1)

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = self.mlp.exported(prefix)
        out.update(_linear(prefix + ".out", self.out))
        return out


class Trunk(nn.Module):
    """The shared trunk; one output per task (None for tasks without a gate).

    mmoe_dcn: h_t = sum_i softmax(gate_t(x))_i f_i(x), gates only for the tasks
    in `gated` (named by the task's config index). mlp: one MLP of widths
    [D, expert_mlp...] shared by every gated task.
    """

    def __init__(self, in_dim: int, spec: TrunkSpec, gated: Sequence[bool]):
        super().__init__()
        self.arch = spec.arch
        self.gated = list(gated)
        if spec.arch == "mlp":
            self.mlp = MLP(in_dim, [spec.expert_dim, *spec.expert_mlp])
            self.out_dim = self.mlp.out_dim
        elif spec.arch == "mmoe_dcn":
            if spec.experts < 1:
                raise ValueError("tandem.config: an mmoe_dcn trunk needs at least one expert")
            self.experts = nn.ModuleList(Expert(in_dim, spec) for _ in range(spec.experts))
            self.gates = nn.ModuleDict({str(t): Gate(in_dim, spec.gate_mlp, spec.experts)
                                        for t, on in enumerate(gated) if on})
            self.out_dim = self.experts[0].mlp.out_dim
        else:
            raise ValueError(f"tandem.config: unknown trunk arch {spec.arch!r} (want mmoe_dcn or mlp)")

    def forward(self, x: torch.Tensor) -> List[Optional[torch.Tensor]]:
        if self.arch == "mlp":
            h = self.mlp(x)
            return [h if on else None for on in self.gated]
        f = torch.stack([expert(x) for expert in self.experts], dim=1)  # [N, E, H]
        out: List[Optional[torch.Tensor]] = []
        for t, on in enumerate(self.gated):
            if not on:
                out.append(None)
                continue
            g = self.gates[str(t)](x)                                   # [N, E]
            out.append(torch.bmm(g.unsqueeze(1), f).squeeze(1))       # [N, H]
        return out

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        if self.arch == "mlp":
            return self.mlp.exported(prefix + ".mlp")
        out = {}
        for i, expert in enumerate(self.experts):
            out.update(expert.exported(f"{prefix}.expert.{i}"))
        for t, gate in self.gates.items():
            out.update(gate.exported(f"{prefix}.gate.{t}"))
        return out


# ---------------------------------------------------------------------------
# The user side: sequence tokens, encoder, sequence output, projection.

@dataclass
class SeqMasks:
    real: torch.Tensor       # [U, L] bool: j < len
    key_bias: torch.Tensor   # [U, L]: 0 for j < max(len, 1), KEY_PAD after
    nonempty: torch.Tensor   # [U] bool: len > 0


def sequence_masks(length: torch.Tensor, positions: int, dtype: torch.dtype) -> SeqMasks:
    j = torch.arange(positions, device=length.device).unsqueeze(0)
    real = j < length.unsqueeze(1)
    attendable = j < length.clamp(min=1).unsqueeze(1)
    key_bias = torch.zeros(real.shape, dtype=dtype, device=length.device).masked_fill(~attendable, KEY_PAD)
    return SeqMasks(real=real, key_bias=key_bias, nonempty=length > 0)


class SequenceTables(nn.Module):
    def __init__(self, spec: SeqSpec):
        super().__init__()
        self.action = Table(NUM_ACTIONS, spec.action_dim)
        self.surface = Table(spec.surfaces, spec.surface_dim)
        self.age = Table(spec.age_buckets, spec.age_dim)
        self.position = Table(spec.length, spec.dim)           # P_j, j = 0 the newest
        self.oov_content = Table(1, spec.content_dim)          # content_emb of items not in the item table

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        return {f"{prefix}.{name}": table.weight for name, table in self.named_children()}


class EncoderLayer(nn.Module):
    """Post-LN Transformer layer: x = LN1(x + attn(x)); x = LN2(x + FFN(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.ffn1 = nn.Linear(dim, 4 * dim)
        self.ffn2 = nn.Linear(4 * dim, dim)
        self.ln1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """x [U, L, d]; key_bias [U, L] is added to every query's scores for that key."""
        u, l, d = x.shape
        h = self.heads
        dh = d // h

        def split(t):  # [U, L, d] -> [U, h, L, d/h]: head i is columns [i*dh, (i+1)*dh)
            return t.reshape(u, l, h, dh).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
        att = torch.softmax(scores + key_bias[:, None, None, :], dim=-1)
        o = torch.matmul(att, v).transpose(1, 2).reshape(u, l, d)
        x = self.ln1(x + self.out(o))
        return self.ln2(x + self.ffn2(F.relu(self.ffn1(x))))

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = {}
        for name in ("q", "k", "v", "out"):
            out.update(_linear(f"{prefix}.attn.{name}", getattr(self, name)))
        out.update(_linear(prefix + ".ffn.1", self.ffn1))
        out.update(_linear(prefix + ".ffn.2", self.ffn2))
        for name in ("ln1", "ln2"):
            ln = getattr(self, name)
            out.update({f"{prefix}.{name}.weight": ln.weight, f"{prefix}.{name}.bias": ln.bias})
        return out


class SequenceEncoder(nn.Module):
    """The user side of a model, computed once per context.

    tokens -> encoder outputs T [U, L, d] -> sequence output
    s = flatten(T[:, :short_term]) (missing positions 0) + Linear(masked max-pool)
    -> projection Linear(cross(s, s)) to p.
    """

    def __init__(self, spec: SeqSpec):
        super().__init__()
        self.spec = spec
        self.emb = SequenceTables(spec)
        self.token = nn.Linear(spec.token_in, spec.dim)
        self.layers = nn.ModuleList(EncoderLayer(spec.dim, spec.heads) for _ in range(spec.layers))
        self.pool = nn.Linear(spec.dim, spec.dim)
        self.cross = CrossFull(spec.out_dim)
        self.proj = nn.Linear(spec.out_dim, spec.projection)

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = self.emb.exported(prefix + ".emb")
        out.update(_linear(prefix + ".enc.token", self.token))
        for n, layer in enumerate(self.layers):
            out.update(layer.exported(f"{prefix}.enc.layer.{n}"))
        out.update(_linear(prefix + ".out.pool", self.pool))
        out.update(self.cross.exported(prefix + ".proj.cross"))
        out.update(_linear(prefix + ".proj.out", self.proj))
        return out

    def tokens(self, seq: SeqBatch, real: torch.Tensor) -> torch.Tensor:
        """content (or the OOV row) + E_act + E_surf + E_age per position; zero at padded positions."""
        emb = self.emb
        oov = seq.oov & real
        content = torch.where(oov.unsqueeze(-1), emb.oov_content.weight[0].expand_as(seq.content), seq.content)
        codes = [c.masked_fill(~real, 0) for c in (seq.action, seq.surface, seq.age)]
        tok = torch.cat([content, emb.action(codes[0]), emb.surface(codes[1]), emb.age(codes[2])], dim=-1)
        return tok.masked_fill(~real.unsqueeze(-1), 0.0)

    def encode(self, seq: SeqBatch) -> Tuple[torch.Tensor, SeqMasks]:
        """Encoder outputs T [U, L, d] and the masks of the U sequences."""
        masks = sequence_masks(seq.length, self.spec.length, self.token.weight.dtype)
        x = self.token(self.tokens(seq, masks.real)) + self.emb.position.weight
        for layer in self.layers:
            x = layer(x, masks.key_bias)
        return x, masks

    def output(self, t: torch.Tensor, masks: SeqMasks) -> torch.Tensor:
        """s = flatten(newest short_term outputs, missing ones 0) + Linear(masked max-pool, 0 when empty)."""
        st = self.spec.short_term
        newest = t[:, :st, :].masked_fill(~masks.real[:, :st, None], 0.0).reshape(t.shape[0], st * t.shape[2])
        pool_bias = torch.zeros(masks.real.shape, dtype=t.dtype, device=t.device).masked_fill(~masks.real, POOL_PAD)
        pooled = (t + pool_bias.unsqueeze(-1)).amax(dim=1)
        pooled = pooled.masked_fill(~masks.nonempty.unsqueeze(-1), 0.0)
        return torch.cat([newest, self.pool(pooled)], dim=-1)

    def project(self, s: torch.Tensor) -> torch.Tensor:
        return self.proj(self.cross(s, s))

    def forward(self, seq: SeqBatch) -> Tuple[torch.Tensor, SeqMasks, torch.Tensor]:
        """(T, masks, projected user vector [U, p])."""
        t, masks = self.encode(seq)
        return t, masks, self.project(self.output(t, masks))


class TargetAttention(nn.Module):
    """Attention from a candidate vector c over its context's encoder outputs T.

    q = c W_q^T; K = T W_k^T; V = T W_v^T (once per context);
    softmax(q K^T / sqrt(d) + key mask) V, zero for an empty sequence.
    """

    def __init__(self, cand_dim: int, dim: int):
        super().__init__()
        self.q = nn.Linear(cand_dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = {}
        for name in ("q", "k", "v"):
            out.update(_linear(f"{prefix}.{name}", getattr(self, name)))
        return out

    def keys(self, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """K, V [U, L, d], once per context."""
        return self.k(t), self.v(t)

    def forward(self, cand: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                ctx: torch.Tensor, masks: SeqMasks) -> torch.Tensor:
        q = self.q(cand)                                                    # [N, d]
        k = keys.index_select(0, ctx)                                       # [N, L, d]
        v = values.index_select(0, ctx)
        scores = torch.bmm(k, q.unsqueeze(-1)).squeeze(-1) * self.scale     # [N, L]
        att = torch.softmax(scores + masks.key_bias.index_select(0, ctx), dim=-1)
        out = torch.bmm(att.unsqueeze(1), v).squeeze(1)                     # [N, d]
        return out.masked_fill(~masks.nonempty.index_select(0, ctx).unsqueeze(-1), 0.0)


class Tower(nn.Module):
    """A task's tower: MLP (ReLU) then Linear to one logit."""

    def __init__(self, in_dim: int, widths: Sequence[int]):
        super().__init__()
        self.mlp = MLP(in_dim, widths)
        self.out = nn.Linear(self.mlp.out_dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(h)).squeeze(-1)

    def exported(self, prefix: str) -> Dict[str, torch.Tensor]:
        out = self.mlp.exported(prefix + ".mlp")
        out.update(_linear(prefix + ".out", self.out))
        return out


# ---------------------------------------------------------------------------
# The exported models.

class ExportedModel(nn.Module):
    """A model whose tensors carry export names (see `exported`)."""

    kind = ""

    def exported(self) -> Dict[str, torch.Tensor]:
        """Every exported tensor (parameter or buffer) by its export name."""
        raise NotImplementedError

    def statistics(self) -> List[str]:
        """Export names of the buffers: batch-norm statistics and config, calibration."""
        params = {id(p) for p in self.parameters()}
        return sorted(n for n, t in self.exported().items() if id(t) not in params)

    def _copy_in(self, tensors: Mapping[str, object], names: Sequence[str]) -> None:
        want = self.exported()
        for name in names:
            src = tensors[name]
            dst = want[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(f"{self.kind} export: tensor {name} has shape {list(src.shape)}, "
                                 f"the config gives {list(dst.shape)}")
        with torch.no_grad():
            for name in names:
                src = tensors[name]
                if not isinstance(src, torch.Tensor):
                    src = torch.from_numpy(np.array(src, dtype=np.float32))
                want[name].copy_(src)

    def load_state(self, tensors: Mapping[str, object]) -> None:
        """Loads every tensor of an export; missing or extra names and wrong shapes are errors."""
        want = self.exported()
        missing = sorted(set(want) - set(tensors))
        extra = sorted(set(tensors) - set(want))
        problems = []
        for what, names in (("missing", missing), ("unexpected", extra)):
            if names:
                shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
                problems.append(f"{what} tensor(s): {shown}")
        if problems:
            raise ValueError(f"{self.kind} export does not match the model its config describes: " + "; ".join(problems))
        self._copy_in(tensors, sorted(want))

    def load_statistics(self, tensors: Mapping[str, object]) -> None:
        """Loads only the buffers (statistics, bn config, calibration)."""
        names = self.statistics()
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"{self.kind} export lacks {', '.join(missing)}")
        self._copy_in(tensors, names)

    def state(self) -> Dict[str, np.ndarray]:
        """Every exported tensor as a float32 numpy array, by export name."""
        return {name: t.detach().to(torch.float32).cpu().numpy().copy() for name, t in self.exported().items()}

    def set_sparse_tables(self, sparse: bool) -> None:
        """Sparse gradients for the categorical tables (`emb`), for SparseAdam."""
        for table in self.emb.values():
            table.sparse = sparse

    def outputs(self, batch: Batch) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


def _embed(tables: nn.ModuleDict, codes: torch.Tensor, names: Sequence[str]) -> List[torch.Tensor]:
    """Looks up column i of codes in tables[names[i]]."""
    return [tables[name](codes[:, i]) for i, name in enumerate(names)]


class L2Model(ExportedModel):
    """The unified engagement model of one surface's export (l2_<surface>.safetensors).

    x0 = user cats + pretrained + context cats + context item content + ad cats +
    ad content + BN dense (user, ad) + target attention + projected user vector;
    trunk -> per-task h_t -> the surface's tower -> logit z_t (0 for a task the
    surface has no tower for); p_t = sigmoid(A z_t + B), (A, B) by view type and task.
    The `logistic` baseline has no sequence, target attention or trunk: each
    tower is one Linear over x0 without the last two blocks.
    """

    kind = "l2"

    def __init__(self, config: Mapping, meta: Mapping):
        super().__init__()
        self.schema = schema = Schema.from_config(config)
        model = _get(config, "model")
        e = int(model["embed_dim"])
        l2 = model["l2"]
        self.tasks = list(schema.tasks)
        self.surface = meta.get("surface")
        if self.surface not in schema.surfaces:
            raise ValueError(f"tandem.model: surface {self.surface!r} is not in the config's surfaces {list(schema.surfaces)}")
        self.view_types = list(meta.get("view_types") or schema.surface_views[self.surface])
        serves = list(meta.get("serves", range(len(schema.surfaces))))
        trunk_spec = TrunkSpec.from_config(l2)
        self.arch = trunk_spec.arch

        self.emb = nn.ModuleDict({f.name: Table(f.rows, e)
                                  for f in (*schema.user_cats, *schema.context, *schema.ad_cats)})
        self.bn = ResilientBN(len(schema.user_dense) + len(schema.ad_dense))
        cand_dim = len(schema.ad_cats) * e + schema.content_dim
        width = (len(schema.user_cats) * e + schema.pretrained_dim + len(schema.context) * e
                 + schema.content_dim + cand_dim + len(schema.user_dense) + len(schema.ad_dense))
        # The sequence inputs keep their shapes for every arch (the logistic baseline ignores them).
        self.seq_spec = SeqSpec.from_config(config, schema)
        if self.arch == "logistic":
            self.seq = None
            self.ta = None
            self.trunk = None
            tower_in, tower_mlp = width, ()
        else:
            self.seq = SequenceEncoder(self.seq_spec)
            self.ta = TargetAttention(cand_dim, self.seq_spec.dim)
            width += self.seq_spec.dim + self.seq_spec.projection
            self.trunk = Trunk(width, trunk_spec, schema.trained_tasks(serves))
            tower_in, tower_mlp = self.trunk.out_dim, tuple(l2.get("tower_mlp") or ())
        self.x0_dim = width
        surface_index = schema.surfaces.index(self.surface)
        own = schema.surface_tasks[self.surface] if surface_index in serves else ()
        self.towers = nn.ModuleDict({t: Tower(tower_in, tower_mlp) for t in self.tasks if t in own})
        calibration = torch.zeros(len(self.view_types), len(self.tasks), 2)
        calibration[..., 0] = 1.0
        self.register_buffer("calibration", calibration)

    def exported(self) -> Dict[str, torch.Tensor]:
        out = {f"l2.emb.{name}": table.weight for name, table in self.emb.items()}
        out.update(self.bn.exported("l2.bn"))
        if self.seq is not None:
            out.update(self.seq.exported("l2.seq"))
            out.update(self.ta.exported("l2.ta"))
            out.update(self.trunk.exported("l2.trunk"))
        for task, tower in self.towers.items():  # (a logistic tower has no MLP layers: only .out)
            out.update(tower.exported(f"l2.tower.{self.surface}.{task}"))
        out["l2.calibration"] = self.calibration
        return out

    def x0(self, user: UserBatch, rows: RowBatch) -> torch.Tensor:
        """The trunk input of each row; the user side runs once per context and is gathered by row.ctx."""
        ctx = rows.ctx
        user_side = torch.cat([*_embed(self.emb, user.cats, user.cat_names), user.pretrained], dim=-1)  # [U, .]
        cand = torch.cat([*_embed(self.emb, rows.ad_cats, rows.ad_cat_names), rows.ad_content], dim=-1)
        dense = self.bn(torch.cat([user.dense.index_select(0, ctx), rows.ad_dense], dim=-1))
        parts = [user_side.index_select(0, ctx), *_embed(self.emb, rows.context, rows.context_names),
                 rows.context_item, cand, dense]
        if self.seq is not None:
            t, masks, projected = self.seq(user.seq)                    # once per context
            keys, values = self.ta.keys(t)                              # once per context
            parts += [self.ta(cand, keys, values, ctx, masks), projected.index_select(0, ctx)]
        return torch.cat(parts, dim=-1)

    def forward(self, user: UserBatch, rows: RowBatch) -> torch.Tensor:
        """Uncalibrated logits [N, T], tasks in config order."""
        x0 = self.x0(user, rows)
        hs = self.trunk(x0) if self.trunk is not None else [x0] * len(self.tasks)
        zero = x0.new_zeros(x0.shape[0])
        return torch.stack([self.towers[t](hs[i]) if t in self.towers else zero
                            for i, t in enumerate(self.tasks)], dim=1)

    def calibrate(self, logits: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        ab = self.calibration.index_select(0, view)                     # [N, T, 2]
        return torch.sigmoid(ab[..., 0] * logits + ab[..., 1])

    def outputs(self, batch: Batch) -> Dict[str, torch.Tensor]:
        logits = self(batch.user, batch.rows)
        return {"logits": logits, "probs": self.calibrate(logits, batch.rows.view)}


def _route_tasks(schema: Schema, meta: Mapping) -> List[bool]:
    """Tasks with heads: those a surface routed to this L1 model trains."""
    pairs = meta.get("pairs")
    surfaces = sorted({int(p[0]) for p in pairs}) if pairs else range(len(schema.surfaces))
    return schema.trained_tasks(list(surfaces))


class L1UserModel(ExportedModel):
    """The L1 user tower (l1/<route>/user.safetensors).

    x = user cats + pretrained + surface + view type embeddings + BN dense +
    projected sequence vector -> trunk -> u_t = head_t(h_t) per task with a head.
    """

    kind = "l1.user"

    def __init__(self, config: Mapping, meta: Mapping):
        super().__init__()
        self.schema = schema = Schema.from_config(config)
        model = _get(config, "model")
        e = int(model["embed_dim"])
        l1 = model["l1"]
        self.tasks = list(schema.tasks)
        trained = _route_tasks(schema, meta)
        self.emb = nn.ModuleDict({f.name: Table(f.rows, e) for f in (*schema.user_cats, *schema.user_context)})
        n_dense = len(schema.user_dense)
        self.bn = ResilientBN(n_dense, affine=n_dense > 0)
        self.seq_spec = SeqSpec.from_config(config, schema)
        self.seq = SequenceEncoder(self.seq_spec)
        width = (len(schema.user_cats) * e + schema.pretrained_dim + len(schema.user_context) * e
                 + n_dense + self.seq_spec.projection)
        self.x_dim = width
        self.trunk = Trunk(width, TrunkSpec.from_config(l1["user"]), trained)
        out_dim = int(l1["out_dim"])
        heads = [t for t, on in zip(self.tasks, trained) if on]
        self.heads = nn.ModuleDict({t: nn.Linear(self.trunk.out_dim, out_dim) for t in heads})
        self.beta = nn.ParameterDict({t: nn.Parameter(torch.zeros(1)) for t in heads})

    def exported(self) -> Dict[str, torch.Tensor]:
        out = {f"l1.user.emb.{name}": table.weight for name, table in self.emb.items()}
        out.update(self.bn.exported("l1.user.bn"))
        out.update(self.seq.exported("l1.user.seq"))
        out.update(self.trunk.exported("l1.user.trunk"))
        for task, head in self.heads.items():
            out.update(_linear(f"l1.user.head.{task}", head))
            out[f"l1.user.beta.{task}"] = self.beta[task]
        return out

    def forward(self, user: UserBatch) -> Dict[str, torch.Tensor]:
        """u_t [U, out_dim] per task with a head."""
        _, _, projected = self.seq(user.seq)
        x = torch.cat([*_embed(self.emb, user.cats, user.cat_names), user.pretrained,
                       *_embed(self.emb, user.context, user.context_names), self.bn(user.dense), projected], dim=-1)
        hs = self.trunk(x)
        return {t: self.heads[t](hs[i]) for i, t in enumerate(self.tasks) if t in self.heads}

    def outputs(self, batch: Batch) -> Dict[str, torch.Tensor]:
        return {f"user.{t}": u for t, u in self(batch.user).items()}


class L1AdModel(ExportedModel):
    """The L1 ad tower (l1/<route>/ad.safetensors).

    x = ad cats + content_emb + BN dense -> full-rank cross (ad_arch mmoe_dcn;
    none for mlp) -> MLP -> a_t = head_t(.) per task with a head.
    """

    kind = "l1.ad"

    def __init__(self, config: Mapping, meta: Mapping):
        super().__init__()
        self.schema = schema = Schema.from_config(config)
        model = _get(config, "model")
        e = int(model["embed_dim"])
        l1 = model["l1"]
        self.tasks = list(schema.tasks)
        trained = _route_tasks(schema, meta)
        self.emb = nn.ModuleDict({f.name: Table(f.rows, e) for f in schema.ad_cats})
        self.bn = ResilientBN(len(schema.ad_dense))
        width = len(schema.ad_cats) * e + schema.content_dim + len(schema.ad_dense)
        self.x_dim = width
        arch = l1["ad_arch"]
        if arch not in ("mmoe_dcn", "mlp"):
            raise ValueError(f"tandem.config: unknown model.l1.ad_arch {arch!r} (want mmoe_dcn or mlp)")
        self.cross = CrossFull(width) if arch == "mmoe_dcn" else None
        self.mlp = MLP(width, l1.get("ad_mlp") or ())
        out_dim = int(l1["out_dim"])
        self.heads = nn.ModuleDict({t: nn.Linear(self.mlp.out_dim, out_dim)
                                    for t, on in zip(self.tasks, trained) if on})

    def exported(self) -> Dict[str, torch.Tensor]:
        out = {f"l1.ad.emb.{name}": table.weight for name, table in self.emb.items()}
        out.update(self.bn.exported("l1.ad.bn"))
        if self.cross is not None:
            out.update(self.cross.exported("l1.ad.cross"))
        out.update(self.mlp.exported("l1.ad.mlp"))
        for task, head in self.heads.items():
            out.update(_linear(f"l1.ad.head.{task}", head))
        return out

    def forward(self, ad: AdBatch) -> Dict[str, torch.Tensor]:
        """a_t [N, out_dim] per task with a head."""
        x = torch.cat([*_embed(self.emb, ad.cats, ad.cat_names), ad.content, self.bn(ad.dense)], dim=-1)
        h = self.cross(x, x) if self.cross is not None else x
        h = self.mlp(h)
        return {t: head(h) for t, head in self.heads.items()}

    def outputs(self, batch: Batch) -> Dict[str, torch.Tensor]:
        return {f"ad.{t}": a for t, a in self(batch.ad).items()}


MODEL_CLASSES = {"l2": L2Model, "l1.user": L1UserModel, "l1.ad": L1AdModel}


def parse_metadata(metadata: Mapping[str, str], path: str = "export") -> Tuple[dict, dict]:
    """(config, model metadata) of an export."""
    out = []
    for key in ("tandem.config", "tandem.model"):
        if key not in metadata:
            raise ValueError(f"{path}: __metadata__ has no {key!r}; not a tandem export")
        try:
            value = json.loads(metadata[key])
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: __metadata__[{key!r}] is not JSON: {e}") from None
        if not isinstance(value, dict):
            raise ValueError(f"{path}: __metadata__[{key!r}] is not a JSON object")
        out.append(value)
    return out[0], out[1]


def build_model(config: Mapping, meta: Mapping) -> ExportedModel:
    """A model with freshly initialised weights for this config and metadata."""
    kind = meta.get("kind")
    if kind not in MODEL_CLASSES:
        raise ValueError(f"tandem.model: kind {kind!r} is not one of {', '.join(KINDS)}")
    tasks = meta.get("tasks")
    if tasks is not None and list(tasks) != list(_get(config, "tasks")):
        raise ValueError(f"tandem.model: tasks {tasks} differ from the config's {_get(config, 'tasks')}")
    return MODEL_CLASSES[kind](config, meta)


def load_export(path: str) -> Tuple[ExportedModel, safetensors_io.SafetensorsFile]:
    """Reads an export and returns its model (weights loaded, eval mode) and the file."""
    f = safetensors_io.read(path)
    config, meta = parse_metadata(f.metadata, path)
    model = build_model(config, meta)
    try:
        model.load_state(f.tensors)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    model.eval()
    return model, f
