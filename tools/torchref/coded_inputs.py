"""Coded input rows (docs/ENGINE.md, "Inputs: coded rows").

An inputs file is safetensors holding F32 tensors named as the engine's fields
(integer codes are stored as F32, exact below 2^24) and
__metadata__["tandem.inputs"], a JSON object naming the features of each
column block in order: {"user_cats": [...], "user_dense": [...],
"context": [...], "ad_cats": [...], "ad_dense": [...], "user_context": [...]}.

This module checks such inputs against a model (shapes, code ranges, the
feature names against the export's config), turns them into the tensors the
models take, and draws valid random inputs for an export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

import models

META_KEY = "tandem.inputs"
BLOCKS = ("user_cats", "user_dense", "context", "ad_cats", "ad_dense", "user_context")
NEEDED_BLOCKS = {
    "l2": ("user_cats", "user_dense", "context", "ad_cats", "ad_dense"),
    "l1.user": ("user_cats", "user_dense", "user_context"),
    "l1.ad": ("ad_cats", "ad_dense"),
}


class InputError(ValueError):
    """Inputs that do not fit the export."""


def config_blocks(schema: models.Schema) -> Dict[str, List[str]]:
    """The features of each column block, in config order."""
    names = lambda fs: [f.name for f in fs]  # noqa: E731
    return {"user_cats": names(schema.user_cats), "user_dense": list(schema.user_dense),
            "context": names(schema.context), "ad_cats": names(schema.ad_cats),
            "ad_dense": list(schema.ad_dense), "user_context": names(schema.user_context)}


def check_blocks(model: models.ExportedModel, metadata: Mapping[str, str]) -> Dict[str, List[str]]:
    """Parses tandem.inputs and checks every block it names against the export's config."""
    raw = metadata.get(META_KEY)
    if raw is None:
        raise InputError(f"the inputs have no __metadata__[{META_KEY!r}] naming the features of each column block")
    try:
        blocks = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InputError(f"__metadata__[{META_KEY!r}] is not JSON: {e}") from None
    if not isinstance(blocks, dict):
        raise InputError(f"__metadata__[{META_KEY!r}] is not a JSON object")
    unknown = sorted(set(blocks) - set(BLOCKS))
    if unknown:
        raise InputError(f"{META_KEY}: unknown block(s) {unknown} (known: {', '.join(BLOCKS)})")
    want = config_blocks(model.schema)
    needed = NEEDED_BLOCKS[model.kind]
    for key in needed:
        if want[key] and blocks.get(key) is None:
            raise InputError(f"{META_KEY} has no {key!r} block (the export's config has {want[key]})")
    for key, got in blocks.items():
        # null (a Go nil slice) is an empty block; a block the export does not read may be left empty.
        got = [] if got is None else got
        if got != want[key] and (got or key in needed):
            raise InputError(f"{META_KEY}[{key!r}] = {got} does not match the export's config, which has {want[key]}")
    return {key: want[key] for key in needed}


# ---------------------------------------------------------------------------
# Fields and their checks.

Bound = Union[int, str, Tuple[int, ...], None]


@dataclass(frozen=True)
class Field:
    name: str
    dims: Tuple[Union[int, str], ...]   # "U" (contexts), "N" (rows) or a fixed size
    bound: Bound = None                  # integer codes in [0, bound): one bound, one per column, "U"; None: real values
    tables: Tuple[str, ...] = ()         # per column, for messages
    in_sequence: bool = False            # only positions j < seq.len are checked (and used)
    finite: bool = False                 # real values that must be finite
    optional: bool = False


def fields_for(model: models.ExportedModel) -> List[Field]:
    s = model.schema
    kind = prefix = model.kind  # table names start with the kind: l2.emb.*, l1.user.emb.*, l1.ad.emb.*

    def cats(name, dim, features):
        return Field(name, (dim, len(features)), bound=tuple(f.rows for f in features),
                     tables=tuple(f"{prefix}.emb.{f.name}" for f in features))

    out: List[Field] = []
    if kind in ("l2", "l1.user"):
        seq_optional = model.seq is None  # the logistic baseline reads no sequence
        L = s.seq_length
        buckets = model.seq_spec.age_buckets
        out += [
            cats("user.cats", "U", s.user_cats),
            Field("user.dense", ("U", len(s.user_dense))),
            Field("user.pretrained", ("U", s.pretrained_dim), finite=True),
            Field("seq.len", ("U",), bound=L + 1, optional=seq_optional),
            Field("seq.content", ("U", L, s.content_dim), in_sequence=True, finite=True, optional=seq_optional),
            Field("seq.oov", ("U", L), bound=2, in_sequence=True, optional=seq_optional),
            Field("seq.action", ("U", L), bound=models.NUM_ACTIONS, in_sequence=True,
                  tables=(f"{prefix}.seq.emb.action",), optional=seq_optional),
            Field("seq.surface", ("U", L), bound=len(s.surfaces), in_sequence=True,
                  tables=(f"{prefix}.seq.emb.surface",), optional=seq_optional),
            Field("seq.age", ("U", L), bound=buckets, in_sequence=True,
                  tables=(f"{prefix}.seq.emb.age",), optional=seq_optional),
        ]
    if kind == "l1.user":
        out.append(cats("user.context", "U", s.user_context))
    if kind == "l2":
        out += [
            Field("row.ctx", ("N",), bound="U"),
            cats("row.context", "N", s.context),
            Field("row.context_item", ("N", s.content_dim), finite=True),
            cats("row.ad_cats", "N", s.ad_cats),
            Field("row.ad_content", ("N", s.content_dim), finite=True),
            Field("row.ad_dense", ("N", len(s.ad_dense))),
            Field("row.view", ("N",), bound=len(model.view_types)),
        ]
    if kind == "l1.ad":
        out += [
            cats("ad.cats", "N", s.ad_cats),
            Field("ad.content", ("N", s.content_dim), finite=True),
            Field("ad.dense", ("N", len(s.ad_dense))),
        ]
    return out


def _where(name: str, index) -> str:
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


def _check_codes(f: Field, a: np.ndarray, bound, mask: Optional[np.ndarray]) -> None:
    hi = np.broadcast_to(np.asarray(bound, dtype=np.float64), a.shape) if a.size else np.zeros(a.shape)
    with np.errstate(invalid="ignore"):
        not_int = ~np.isfinite(a) | (a != np.floor(a))
        bad = not_int | (a < 0) | (a >= hi)
    if mask is not None:
        bad &= mask
    if not bad.any():
        return
    index = tuple(np.argwhere(bad)[0])
    value = a[index]
    if not_int[index]:
        problem = "is not an integer code"
    else:
        problem = f"is outside [0, {int(hi[index])})"
    table = ""
    if f.tables:
        table = f" ({f.tables[index[-1]] if len(f.tables) > 1 else f.tables[0]})"
    raise InputError(f"{_where(f.name, index)} = {value:g} {problem}{table}")


def validate(model: models.ExportedModel, arrays: Mapping[str, np.ndarray]) -> Dict[str, int]:
    """Checks shapes, codes and finiteness; returns the sizes {"U": .., "N": ..}."""
    fields = fields_for(model)
    missing = [f.name for f in fields if not f.optional and f.name not in arrays]
    if missing:
        raise InputError(f"missing input tensor(s) for a {model.kind} export: {', '.join(missing)}")
    sizes: Dict[str, int] = {}
    size_from: Dict[str, str] = {}
    present = [f for f in fields if f.name in arrays]
    for f in present:
        a = arrays[f.name]
        if a.ndim != len(f.dims):
            raise InputError(f"{f.name}: shape {list(a.shape)}, want [{', '.join(map(str, f.dims))}]")
        for axis, dim in enumerate(f.dims):
            n = int(a.shape[axis])
            if isinstance(dim, str):
                if dim in sizes and sizes[dim] != n:
                    raise InputError(f"{f.name}: shape {list(a.shape)}, want {dim} = {sizes[dim]} "
                                     f"rows (as in {size_from[dim]}) on axis {axis}")
                sizes.setdefault(dim, n)
                size_from.setdefault(dim, f.name)
            elif n != dim:
                want = ", ".join(str(d) for d in f.dims)
                raise InputError(f"{f.name}: shape {list(a.shape)}, want [{want}]")

    real = None
    if "seq.len" in arrays:
        length_field = next(f for f in fields if f.name == "seq.len")
        _check_codes(length_field, arrays["seq.len"], length_field.bound, None)
        L = model.schema.seq_length
        real = np.arange(L)[None, :] < arrays["seq.len"][:, None]
    oov = None
    if real is not None and "seq.oov" in arrays:
        oov = (arrays["seq.oov"] != 0) & real
    for f in present:
        a = arrays[f.name]
        mask = real if f.in_sequence else None
        if f.bound is not None and f.name != "seq.len":
            bound = sizes.get("U", 0) if f.bound == "U" else f.bound
            _check_codes(f, a, bound, mask)
        elif f.finite:
            bad = ~np.isfinite(a)
            if mask is not None:
                bad &= (mask & ~oov)[..., None] if oov is not None else mask[..., None]
            if bad.any():
                index = tuple(np.argwhere(bad)[0])
                raise InputError(f"{_where(f.name, index)} = {a[index]} is not finite")
    return sizes


# ---------------------------------------------------------------------------
# Arrays -> the models' batches.

def to_batch(model: models.ExportedModel, arrays: Mapping[str, np.ndarray], blocks: Mapping[str, List[str]],
             dtype: torch.dtype = torch.float32) -> models.Batch:
    """Tensors for a validated input set (codes become int64; reals the model's dtype)."""

    def real(name):
        return torch.from_numpy(np.array(arrays[name], dtype=np.float64 if dtype == torch.float64 else np.float32))

    def codes(name, mask=None):
        a = np.asarray(arrays[name], dtype=np.float64)
        if mask is not None:
            a = np.where(mask, a, 0.0)  # padded positions are ignored; keep them in range
        return torch.from_numpy(a.astype(np.int64))

    batch = models.Batch()
    if model.kind in ("l2", "l1.user"):
        seq = None
        if "seq.len" in arrays and model.seq is not None:
            length = np.asarray(arrays["seq.len"], dtype=np.int64)
            mask = np.arange(model.schema.seq_length)[None, :] < length[:, None]
            content = np.where(mask[..., None], np.asarray(arrays["seq.content"], dtype=np.float64), 0.0)
            seq = models.SeqBatch(
                length=torch.from_numpy(length),
                content=torch.from_numpy(content).to(dtype),
                oov=codes("seq.oov", mask) != 0,
                action=codes("seq.action", mask),
                surface=codes("seq.surface", mask),
                age=codes("seq.age", mask),
            )
        batch.user = models.UserBatch(
            cats=codes("user.cats"), cat_names=list(blocks["user_cats"]),
            dense=real("user.dense"), pretrained=real("user.pretrained"), seq=seq)
        if model.kind == "l1.user":
            batch.user.context = codes("user.context")
            batch.user.context_names = list(blocks["user_context"])
    if model.kind == "l2":
        batch.rows = models.RowBatch(
            ctx=codes("row.ctx"), context=codes("row.context"), context_names=list(blocks["context"]),
            context_item=real("row.context_item"), ad_cats=codes("row.ad_cats"),
            ad_cat_names=list(blocks["ad_cats"]), ad_content=real("row.ad_content"),
            ad_dense=real("row.ad_dense"), view=codes("row.view"))
    if model.kind == "l1.ad":
        batch.ad = models.AdBatch(cats=codes("ad.cats"), cat_names=list(blocks["ad_cats"]),
                                  content=real("ad.content"), dense=real("ad.dense"))
    return batch


def prepare(model: models.ExportedModel, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str],
            dtype: torch.dtype = torch.float32) -> models.Batch:
    """check_blocks + validate + to_batch."""
    blocks = check_blocks(model, metadata)
    validate(model, arrays)
    return to_batch(model, arrays, blocks, dtype)


def gather_contexts(arrays: Mapping[str, np.ndarray], ctx: np.ndarray) -> Dict[str, np.ndarray]:
    """The same L2 inputs with each row given its own copy of its context (no broadcasting)."""
    out = dict(arrays)
    ctx = np.asarray(ctx, dtype=np.int64)
    for name, a in arrays.items():
        if name.startswith("user.") or name.startswith("seq."):
            out[name] = np.ascontiguousarray(a[ctx])
    out["row.ctx"] = np.arange(len(ctx), dtype=np.float32)
    return out


# ---------------------------------------------------------------------------
# Random valid inputs.

def _dense(rng: np.random.Generator, bn: models.ResilientBN, cols: slice, rows: int) -> np.ndarray:
    """Values around the running statistics, with a few far outliers (clamped by the BN)."""
    mean = bn.running_mean.detach().double().numpy()[cols]
    var = bn.running_var.detach().double().numpy()[cols]
    var_min = float(bn.config[1])
    sd = np.sqrt(np.maximum(var, var_min))
    x = mean + 1.5 * sd * rng.standard_normal((rows, len(mean)))
    outlier = rng.random(x.shape) < 0.05
    sign = rng.choice([-1.0, 1.0], size=x.shape)
    return np.where(outlier, mean + sign * 20.0 * sd, x).astype(np.float32)


def _cat_codes(rng: np.random.Generator, features: Sequence[models.Categorical], rows: int) -> np.ndarray:
    out = np.zeros((rows, len(features)), dtype=np.float32)
    for i, f in enumerate(features):
        out[:, i] = rng.integers(0, f.rows, size=rows)
    return out


def _sequences(rng: np.random.Generator, schema: models.Schema, age_buckets: int, u: int,
               full: bool) -> Dict[str, np.ndarray]:
    L, C = schema.seq_length, schema.content_dim
    if full:
        length = np.full(u, L)
    else:
        length = rng.integers(0, L + 1, size=u)
        if u >= 2:  # always one empty and one full sequence
            empty, longest = rng.choice(u, size=2, replace=False)
            length[empty], length[longest] = 0, L
        elif u == 1:
            length[0] = L
    real = np.arange(L)[None, :] < length[:, None]
    content = (0.3 * rng.standard_normal((u, L, C))).astype(np.float32)
    oov = (rng.random((u, L)) < 0.15) & real

    def codes(hi):
        return np.where(real, rng.integers(0, hi, size=(u, L)), 0).astype(np.float32)

    return {
        "seq.len": length.astype(np.float32),
        "seq.content": np.where(real[..., None], content, 0.0).astype(np.float32),
        "seq.oov": oov.astype(np.float32),
        "seq.action": codes(models.NUM_ACTIONS),
        "seq.surface": codes(len(schema.surfaces)),
        "seq.age": codes(age_buckets),
    }


def _user_side(rng, model, u: int, full: bool, dense_cols: slice) -> Dict[str, np.ndarray]:
    s = model.schema
    out = {
        "user.cats": _cat_codes(rng, s.user_cats, u),
        "user.dense": _dense(rng, model.bn, dense_cols, u),
        "user.pretrained": (0.3 * rng.standard_normal((u, s.pretrained_dim))).astype(np.float32),
    }
    out.update(_sequences(rng, s, model.seq_spec.age_buckets, u, full))
    return out


def random_inputs(model: models.ExportedModel, u: int, n: int, rng: np.random.Generator,
                  full_sequences: bool = False,
                  ctx: Optional[np.ndarray] = None) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Valid random coded inputs for the model: U contexts and N rows.

    Sequence lengths are random and include 0 and L (all L with full_sequences),
    about 15% of events are out of the item table, codes are within the table
    sizes, dense values sometimes lie far outside the clamp, and rows are
    spread over the contexts (every context gets a row when N >= U) unless ctx
    gives each row's context.
    """
    s = model.schema
    arrays: Dict[str, np.ndarray] = {}
    n_user_dense = len(s.user_dense)
    if model.kind == "l2":
        if u < 1 and n > 0:
            raise ValueError("L2 inputs with rows need at least one context")
        arrays.update(_user_side(rng, model, u, full_sequences, slice(0, n_user_dense)))
        if ctx is None:
            if n >= u:
                ctx = np.concatenate([np.arange(u), rng.integers(0, u, size=n - u)])
                rng.shuffle(ctx)
            else:
                ctx = rng.integers(0, u, size=n)
        ctx = np.asarray(ctx, dtype=np.int64)
        view = rng.integers(0, len(model.view_types), size=n)
        context = _cat_codes(rng, s.context, n)
        for i, f in enumerate(s.context):
            if f.name == "surface":
                context[:, i] = f.code(model.surface)
            elif f.name == "view_type":
                context[:, i] = [f.code(model.view_types[v]) for v in view]
        has_item = s.surface_context.get(model.surface) == "item"
        arrays.update({
            "row.ctx": ctx.astype(np.float32),
            "row.context": context,
            "row.context_item": ((0.3 * rng.standard_normal((n, s.content_dim))) if has_item
                                 else np.zeros((n, s.content_dim))).astype(np.float32),
            "row.ad_cats": _cat_codes(rng, s.ad_cats, n),
            "row.ad_content": (0.3 * rng.standard_normal((n, s.content_dim))).astype(np.float32),
            "row.ad_dense": _dense(rng, model.bn, slice(n_user_dense, None), n),
            "row.view": view.astype(np.float32),
        })
    elif model.kind == "l1.user":
        arrays.update(_user_side(rng, model, u, full_sequences, slice(None)))
        context = np.zeros((u, len(s.user_context)), dtype=np.float32)
        surfaces = rng.integers(0, len(s.surfaces), size=u)
        for c in range(u):
            surface = s.surfaces[surfaces[c]]
            views = s.surface_views[surface] or ("",)
            view = views[rng.integers(0, len(views))]
            for i, f in enumerate(s.user_context):
                context[c, i] = f.code(surface if f.name == "surface" else view)
        arrays["user.context"] = context
    elif model.kind == "l1.ad":
        arrays.update({
            "ad.cats": _cat_codes(rng, s.ad_cats, n),
            "ad.content": (0.3 * rng.standard_normal((n, s.content_dim))).astype(np.float32),
            "ad.dense": _dense(rng, model.bn, slice(None), n),
        })
    blocks = {key: config_blocks(s)[key] for key in NEEDED_BLOCKS[model.kind]}
    return arrays, {META_KEY: json.dumps(blocks)}
