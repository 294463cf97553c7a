"""Tests of torchref.

Run: /usr/bin/python3 -m unittest discover -s tools/torchref

The exports are built here, from testdata/tiny_config.json (a tiny training
config) with widths made even smaller, so the tests need no trained model.
Set TORCHREF_SAMPLE_DIR to a model directory version (holding
l2_<surface>.safetensors and l1/<route>/{user,ad}.safetensors) to also load
and run real exports.
"""

import contextlib
import copy
import glob
import io
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import coded_inputs  # noqa: E402
import models  # noqa: E402
import safetensors_io as st  # noqa: E402
import torchref  # noqa: E402


# ---------------------------------------------------------------------------
# Fixtures.

def tiny_config(l2_arch="mmoe_dcn", user_arch="mmoe_dcn", ad_arch="mmoe_dcn"):
    """The fixture config with small, pairwise different widths (so a transposed weight cannot fit)."""
    with open(os.path.join(HERE, "testdata", "tiny_config.json")) as f:
        cfg = json.load(f)
    feats = cfg["features"]
    for side in ("user", "ad", "context"):
        for ft in feats[side]:
            if ft.get("hash_buckets"):
                ft["hash_buckets"] = min(ft["hash_buckets"], 37)
            if ft.get("kind") == "embedding":
                ft["dim"] = 6
    for ft in feats["item"]:
        ft["dim"] = 5
    cfg["sequence"] = {"length": 7, "short_term": 3}
    m = cfg["model"]
    m["embed_dim"] = 4
    m["seq"].update(dim=8, heads=2, layers=2, action_dim=3, surface_dim=2, age_dim=3, projection=6)
    m["l2"].update(arch=l2_arch, experts=3, expert_dim=12, low_rank=4, low_rank_layers=2,
                   expert_mlp=[10], gate_mlp=[5], tower_mlp=[7])
    m["l1"]["user"].update(arch=user_arch, experts=2, expert_dim=12, low_rank=3, low_rank_layers=1,
                           expert_mlp=[10, 9], gate_mlp=[5])
    m["l1"].update(ad_arch=ad_arch, ad_mlp=[11], out_dim=5)
    return cfg


def l2_meta(cfg, surface="home_feed"):
    s = next(x for x in cfg["surfaces"] if x["name"] == surface)
    return {"kind": "l2", "surface": surface, "serves": list(range(len(cfg["surfaces"]))),
            "view_types": [v["name"] for v in s["view_types"]], "tasks": cfg["tasks"]}


def l1_meta(cfg, side):
    pairs = [[s, p] for s in range(len(cfg["surfaces"])) for p in range(len(cfg["products"]))]
    return {"kind": "l1." + side, "route": "all", "tasks": cfg["tasks"],
            "out_dim": cfg["model"]["l1"]["out_dim"], "pairs": pairs}


def make_export(path, cfg, meta, seed=0):
    """A tiny export with PyTorch-initialised weights, nudged so that no layer is an identity."""
    torch.manual_seed(seed)
    model = models.build_model(cfg, meta)
    g = torch.Generator().manual_seed(seed + 1)
    buffers = set(model.statistics())
    with torch.no_grad():
        for name, t in model.exported().items():
            if name not in buffers:
                t.add_(0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith("bn.running_mean"):
                t.copy_(torch.randn(t.shape, generator=g))
            elif name.endswith("bn.running_var"):
                t.copy_(0.1 + 2 * torch.rand(t.shape, generator=g))
                if t.numel() > 1:
                    t[1] = 1e-6  # below v_min
            elif name.endswith("calibration"):
                t[..., 0] = 0.5 + torch.rand(t.shape[:-1], generator=g)
                t[..., 1] = 0.5 * torch.randn(t.shape[:-1], generator=g)
    meta_strings = {"tandem.config": json.dumps(cfg), "tandem.model": json.dumps(meta), "tandem.metrics": "{}"}
    st.write(path, model.state(), meta_strings)


TMP = None
EXPORTS = {}


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="torchref-test-")
    base = tiny_config()
    specs = {
        "l2": (base, l2_meta(base)),
        "l2_related": (base, l2_meta(base, "related")),
        "l2_mlp": (tiny_config(l2_arch="mlp"), None),
        "l2_logistic": (tiny_config(l2_arch="logistic"), None),
        "l1_user": (base, l1_meta(base, "user")),
        "l1_user_mlp": (tiny_config(user_arch="mlp"), None),
        "l1_ad": (base, l1_meta(base, "ad")),
        "l1_ad_mlp": (tiny_config(ad_arch="mlp"), None),
    }
    for i, (name, (cfg, meta)) in enumerate(specs.items()):
        if meta is None:
            meta = l2_meta(cfg) if name.startswith("l2") else l1_meta(cfg, name.split("_")[1])
        path = os.path.join(TMP, name + ".safetensors")
        make_export(path, cfg, meta, seed=10 + i)
        EXPORTS[name] = path


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def load(name):
    return models.load_export(EXPORTS[name])[0]


def random_inputs(model, u=5, n=13, seed=0, **kw):
    return coded_inputs.random_inputs(model, u, n, np.random.default_rng(seed), **kw)


def forward(model, arrays, meta, dtype=torch.float32):
    batch = coded_inputs.prepare(model, arrays, meta, dtype)
    with torch.no_grad():
        out = model.outputs(batch)
    return {k: v.double().numpy() for k, v in out.items()}


def take(arrays, prefixes, index):
    """The arrays with the fields under prefixes restricted to index (rows or contexts)."""
    out = dict(arrays)
    for name, a in arrays.items():
        if name.startswith(prefixes):
            out[name] = np.ascontiguousarray(a[index])
    return out


def quiet(*argv):
    """torchref.main with its stderr captured; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = torchref.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------

class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="torchref-st-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def raw(self, header, data=b"", name="bad.safetensors"):
        """A file with this header (a dict or raw text), padded, then data."""
        text = (header if isinstance(header, str) else json.dumps(header)).encode()
        text += b" " * (-len(text) % 8)
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + data)
        return path

    def assertRejects(self, path, pattern):
        with self.assertRaisesRegex(ValueError, pattern) as cm:
            st.read(path)
        self.assertIn(path, str(cm.exception))

    def test_round_trip(self):
        tensors = {
            "l2.a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "l2.b": np.array([1.5, -2.25, 3.0, 0.0], dtype=np.float32),
            "empty": np.zeros((0, 4), dtype=np.float32),
            "scalar": np.array(7.0, dtype=np.float32),
        }
        meta = {"tandem.model": json.dumps({"kind": "l2"}), "note": "ünïcode"}
        path = os.path.join(self.dir, "ok.safetensors")
        st.write(path, tensors, meta, dtypes={"l2.b": "BF16"})
        f = st.read(path)
        self.assertEqual(sorted(f.tensors), sorted(tensors))
        for name, want in tensors.items():
            self.assertEqual(f.tensors[name].dtype, np.float32)
            np.testing.assert_array_equal(f.tensors[name], want, err_msg=name)
        self.assertEqual(f.dtypes, {"l2.a": "F32", "l2.b": "BF16", "empty": "F32", "scalar": "F32"})
        self.assertEqual(f.metadata, meta)
        with open(path, "rb") as fh:
            blob = fh.read()
        (n,) = struct.unpack("<Q", blob[:8])
        self.assertEqual((8 + n) % 8, 0)
        self.assertEqual(blob[8:8 + n].decode().rstrip(" "), blob[8:8 + n].decode().strip())

    def test_bf16_rounding(self):
        x = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -1 - 2 ** -8, 1 + 2 ** -8 + 2 ** -20, np.inf, -2.5],
                     dtype=np.float32)
        back = st.bf16_to_f32(st.f32_to_bf16(x))
        np.testing.assert_array_equal(back, [1.0, 1 + 2 ** -6, -1.0, 1 + 2 ** -7, np.inf, -2.5])
        # A signalling NaN whose payload is only in the low half must not become infinity.
        nans = np.array([0x7F800001, 0xFF800001], dtype=np.uint32).view(np.float32)
        bits = st.f32_to_bf16(nans)
        self.assertTrue(np.isnan(st.bf16_to_f32(bits)).all())
        self.assertEqual([int(b) >> 15 for b in bits], [0, 1])

    def test_rejects_non_string_metadata(self):
        entry = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
        self.assertRejects(self.raw({"__metadata__": {"a": 1}, "x": entry}, b"\0" * 4), "__metadata__.*not a string")
        self.assertRejects(self.raw({"__metadata__": ["a"], "x": entry}, b"\0" * 4), "__metadata__")

    def test_rejects_truncated(self):
        path = os.path.join(self.dir, "short.safetensors")
        with open(path, "wb") as f:
            f.write(b"\x10\x00")
        self.assertRejects(path, "truncated")
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", 64) + b"{}      ")
        self.assertRejects(path, "header length 64 is beyond the file")
        entry = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
        self.assertRejects(self.raw({"x": entry}, b"\0" * 8), "out of range")

    def test_rejects_overlapping_offsets(self):
        header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
        self.assertRejects(self.raw(header, b"\0" * 12), "overlap")

    def test_rejects_gaps_and_leftovers(self):
        header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
        self.assertRejects(self.raw(header, b"\0" * 12), "gap")
        header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
        self.assertRejects(self.raw(header, b"\0" * 8), "cover")

    def test_rejects_bad_dtype(self):
        header = {"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}
        self.assertRejects(self.raw(header, b"\0" * 8), "dtype 'F64'")

    def test_rejects_bad_entries(self):
        self.assertRejects(self.raw({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
                           "12 bytes")
        self.assertRejects(self.raw({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
                           "shape")
        self.assertRejects(self.raw('{"x": 1, "x": 2}'), "duplicate")
        self.assertRejects(self.raw("[1, 2]"), "not a JSON object")
        self.assertRejects(self.raw("{not json"), "not valid JSON")


class ModelTest(unittest.TestCase):
    def test_strict_load(self):
        f = st.read(EXPORTS["l2"])
        config, meta = models.parse_metadata(f.metadata)
        model = models.build_model(config, meta)
        tensors = dict(f.tensors)
        del tensors["l2.ta.q.weight"]
        with self.assertRaisesRegex(ValueError, "missing tensor.*l2.ta.q.weight"):
            model.load_state(tensors)
        tensors = dict(f.tensors, **{"l2.tower.search.click.out.bias": np.zeros(1, np.float32)})
        with self.assertRaisesRegex(ValueError, "unexpected tensor.*l2.tower.search.click.out.bias"):
            model.load_state(tensors)
        tensors = dict(f.tensors)
        tensors["l2.ta.q.weight"] = tensors["l2.ta.q.weight"].T.copy()
        with self.assertRaisesRegex(ValueError, "l2.ta.q.weight has shape"):
            model.load_state(tensors)

    def test_names_follow_checkpoint_doc(self):
        names = set(st.read(EXPORTS["l2"]).tensors)
        for name in ("l2.emb.country", "l2.seq.emb.oov_content", "l2.seq.enc.layer.1.attn.out.weight",
                     "l2.seq.enc.layer.0.ffn.2.bias", "l2.seq.enc.layer.0.ln2.weight", "l2.seq.out.pool.bias",
                     "l2.seq.proj.cross.weight", "l2.seq.proj.out.weight", "l2.ta.v.bias",
                     "l2.trunk.expert.2.lowrank.1.u", "l2.trunk.expert.0.mlp.0.weight", "l2.trunk.gate.3.out.weight",
                     "l2.tower.home_feed.hide.mlp.0.weight", "l2.calibration", "l2.bn.config"):
            self.assertIn(name, names)
        self.assertFalse(any(n.startswith("l2.tower.search.") for n in names))
        x0 = load("l2").x0_dim
        f = st.read(EXPORTS["l2"])
        self.assertEqual(f.tensors["l2.trunk.expert.0.in.weight"].shape[1], x0)
        user = set(st.read(EXPORTS["l1_user"]).tensors)
        self.assertIn("l1.user.beta.hide", user)
        self.assertIn("l1.user.emb.view_type", user)
        self.assertNotIn("l1.user.emb.query_topic", user)
        ad = set(st.read(EXPORTS["l1_ad"]).tensors)
        self.assertIn("l1.ad.cross.weight", ad)
        self.assertNotIn("l1.ad.cross.weight", set(st.read(EXPORTS["l1_ad_mlp"]).tensors))
        logistic = set(st.read(EXPORTS["l2_logistic"]).tensors)
        self.assertFalse(any(".seq." in n or ".trunk." in n or ".mlp." in n for n in logistic))

    def test_state_round_trip(self):
        for name in EXPORTS:
            f = st.read(EXPORTS[name])
            model = load(name)
            state = model.state()
            self.assertEqual(sorted(state), sorted(f.tensors), name)
            for k, v in state.items():
                np.testing.assert_array_equal(v, f.tensors[k], err_msg=f"{name} {k}")

    def test_init_loads_back(self):
        for name in ("l2", "l2_logistic", "l1_user", "l1_ad"):
            out = os.path.join(TMP, f"init-{name}.safetensors")
            rc, _, err = quiet("init", "--like", EXPORTS[name], "--out", out, "--seed", "3")
            self.assertEqual(rc, 0, err)
            a, b = st.read(EXPORTS[name]), st.read(out)
            self.assertEqual(sorted(a.tensors), sorted(b.tensors))
            self.assertEqual({k: v.shape for k, v in a.tensors.items()}, {k: v.shape for k, v in b.tensors.items()})
            self.assertEqual(a.metadata, b.metadata)
            self.assertEqual(a.dtypes, b.dtypes)
            model, _ = models.load_export(out)
            kept = set(model.statistics())
            for k in a.tensors:
                if k in kept:
                    np.testing.assert_array_equal(a.tensors[k], b.tensors[k], err_msg=k)
            changed = [k for k in a.tensors if k not in kept and not np.array_equal(a.tensors[k], b.tensors[k])]
            self.assertGreater(len(changed), len(a.tensors) // 2)
            again = os.path.join(TMP, f"init-{name}-again.safetensors")
            quiet("init", "--like", EXPORTS[name], "--out", again, "--seed", "3")
            with open(out, "rb") as x, open(again, "rb") as y:
                self.assertEqual(x.read(), y.read(), "init is deterministic for a seed")
            arrays, meta = random_inputs(model)
            for v in forward(model, arrays, meta).values():
                self.assertTrue(np.isfinite(v).all())

    def test_float32_matches_float64(self):
        for name in EXPORTS:
            model = load(name)
            arrays, meta = random_inputs(model, u=6, n=17, seed=1)
            f32 = forward(model, arrays, meta)
            f64 = forward(copy.deepcopy(model).double(), arrays, meta, torch.float64)
            self.assertEqual(sorted(f32), sorted(f64))
            for k in f32:
                self.assertTrue(np.isfinite(f32[k]).all(), f"{name} {k}")
                self.assertGreater(np.ptp(f32[k]), 0, f"{name} {k} is constant")
                np.testing.assert_allclose(f32[k], f64[k], rtol=1e-4, atol=1e-5, err_msg=f"{name} {k}")

    def test_output_shapes(self):
        model = load("l2")
        arrays, meta = random_inputs(model, u=3, n=8)
        out = forward(model, arrays, meta)
        self.assertEqual(out["logits"].shape, (8, 4))
        self.assertTrue(((out["probs"] > 0) & (out["probs"] < 1)).all())
        model = load("l1_user")
        out = forward(model, *random_inputs(model, u=3))
        self.assertEqual(sorted(out), ["user.click", "user.hide", "user.long_click", "user.save"])
        self.assertEqual(out["user.click"].shape, (3, 5))
        model = load("l1_ad")
        out = forward(model, *random_inputs(model, n=6))
        self.assertEqual(out["ad.save"].shape, (6, 5))

    def test_empty_sequence_closed_form(self):
        for name in ("l2", "l1_user"):
            model = load(name)
            arrays, meta = random_inputs(model, u=4, n=9, seed=2)
            empty = int(np.flatnonzero(arrays["seq.len"] == 0)[0])
            # Whatever sits at ignored positions must not matter.
            arrays["seq.content"][empty] = np.nan
            arrays["seq.action"][empty] = 99
            arrays["seq.oov"][empty] = 7
            batch = coded_inputs.prepare(model, arrays, meta)
            with torch.no_grad():
                t, masks = model.seq.encode(batch.user.seq)
                s = model.seq.output(t, masks)
                spec = model.seq.spec
                want = torch.cat([torch.zeros(spec.short_term * spec.dim), model.seq.pool.bias])
                np.testing.assert_array_equal(s[empty].numpy(), want.numpy())
                self.assertTrue(torch.isfinite(s).all())
                if name == "l2":
                    keys, values = model.ta.keys(t)
                    cand = torch.randn(3, model.ta.q.in_features)
                    ctx = torch.full((3,), empty, dtype=torch.long)
                    out = model.ta(cand, keys, values, ctx, masks)
                    np.testing.assert_array_equal(out.numpy(), np.zeros((3, spec.dim), np.float32))

    def test_encoder_ignores_padding(self):
        """The masked form over L positions equals running the encoder on the real events only."""
        model = load("l1_user")
        arrays, meta = random_inputs(model, u=5, seed=4)
        c = int(np.flatnonzero(arrays["seq.len"] == model.schema.seq_length)[0])
        n = 3
        arrays["seq.len"][c] = n  # positions n.. still hold events; they are padding now
        batch = coded_inputs.prepare(model, arrays, meta)
        seq = model.seq
        with torch.no_grad():
            t, masks = seq.encode(batch.user.seq)
            x = seq.token(seq.tokens(batch.user.seq, masks.real)[c:c + 1, :n]) + seq.emb.position.weight[:n]
            for layer in seq.layers:
                x = layer(x, torch.zeros(1, n))
        np.testing.assert_allclose(t[c, :n].numpy(), x[0].numpy(), rtol=1e-5, atol=1e-6)

    def test_broadcasting(self):
        """A context's rows score the same as rows that each carry their own copy of the context."""
        for name in ("l2", "l2_mlp", "l2_logistic"):
            model = load(name)
            arrays, meta = random_inputs(model, u=4, n=15, seed=3)
            shared = forward(model, arrays, meta)
            own = forward(model, coded_inputs.gather_contexts(arrays, arrays["row.ctx"].astype(np.int64)), meta)
            for k in shared:
                np.testing.assert_allclose(shared[k], own[k], rtol=1e-5, atol=1e-6, err_msg=f"{name} {k}")

    def test_batch_invariance(self):
        model = load("l2")
        arrays, meta = random_inputs(model, u=5, n=20, seed=5)
        full = forward(model, arrays, meta)
        for index in ([7], [3, 4, 5, 6], list(range(19, -1, -1))):
            part = forward(model, take(arrays, ("row.",), index), meta)
            np.testing.assert_allclose(part["logits"], full["logits"][index], rtol=1e-5, atol=1e-6)
        model = load("l1_user")
        arrays, meta = random_inputs(model, u=6, seed=6)
        full = forward(model, arrays, meta)
        for index in ([2], [4, 1]):
            part = forward(model, take(arrays, ("user.", "seq."), index), meta)
            for k in full:
                np.testing.assert_allclose(part[k], full[k][index], rtol=1e-5, atol=1e-6)
        model = load("l1_ad")
        arrays, meta = random_inputs(model, n=9, seed=7)
        full = forward(model, arrays, meta)
        part = forward(model, take(arrays, ("ad.",), [8, 0]), meta)
        for k in full:
            np.testing.assert_allclose(part[k], full[k][[8, 0]], rtol=1e-5, atol=1e-6)

    def test_task_without_tower(self):
        model = load("l2_related")
        self.assertNotIn("long_click", model.towers)
        arrays, meta = random_inputs(model, u=3, n=10, seed=8)
        out = forward(model, arrays, meta)
        t = model.tasks.index("long_click")
        np.testing.assert_array_equal(out["logits"][:, t], 0.0)
        b = model.calibration[torch.from_numpy(arrays["row.view"].astype(np.int64)), t, 1].double()
        np.testing.assert_allclose(out["probs"][:, t], torch.sigmoid(b).numpy(), rtol=1e-6)
        self.assertTrue((out["logits"][:, model.tasks.index("hide")] != 0).all())

    def test_resilient_bn_formula(self):
        bn = models.ResilientBN(4)
        mean, var = [0.5, -2.0, 10.0, 0.0], [4.0, 1e-6, 0.25, 1.0]
        clamp, var_min = 3.0, 1e-4
        weight, bias = [1.5, -0.5, 2.0, 1.0], [0.1, 0.2, -0.3, 0.0]
        with torch.no_grad():
            bn.running_mean.copy_(torch.tensor(mean))
            bn.running_var.copy_(torch.tensor(var))
            bn.config.copy_(torch.tensor([clamp, var_min]))
            bn.weight.copy_(torch.tensor(weight))
            bn.bias.copy_(torch.tensor(bias))
        x = np.array([[0.5, -2.0, 10.0, np.nan],
                      [100.0, -2.0001, 9.0, np.inf],
                      [-1e30, 5.0, 10.2, -np.inf]], dtype=np.float32)
        f32 = lambda v: float(np.float32(v))  # noqa: E731  (the stored precision)

        def reference(v, j):  # batch/sparse.go, BN.Normalize, serving branch
            m, c, vmin = f32(mean[j]), f32(clamp), f32(var_min)
            sd = math.sqrt(max(f32(var[j]), vmin))
            if math.isnan(v):
                z = 0.0
            else:
                v = min(max(v, m - c * sd), m + c * sd)
                z = min(max((v - m) / sd, -c), c)
            return np.float32(np.float32(weight[j]) * np.float32(z)) + np.float32(bias[j])

        want = np.array([[reference(float(x[r, j]), j) for j in range(4)] for r in range(3)], dtype=np.float32)
        with torch.no_grad():
            got = bn(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(got, want)
        self.assertEqual(got[0, 3], np.float32(bias[3]))       # NaN -> 0
        self.assertAlmostEqual(float(got[2, 0]), 1.5 * -3 + 0.1, places=5)  # clamped to -c

    def test_input_errors(self):
        model = load("l2")
        arrays, meta = random_inputs(model, u=4, n=10, seed=9)

        def rejects(pattern, changes=None, drop=None, metadata=meta):
            bad = {k: v.copy() for k, v in arrays.items()}
            for name, fn in (changes or {}).items():
                fn(bad[name])
            if drop:
                del bad[drop]
            with self.assertRaisesRegex(coded_inputs.InputError, pattern):
                coded_inputs.prepare(model, bad, metadata)

        def put(index, value):
            def fn(a):
                a[index] = value
            return fn

        rejects(r"row\.context\[2, 1\] = 99 is outside \[0, 4\) \(l2\.emb\.view_type\)",
                {"row.context": put((2, 1), 99)})
        rejects(r"row\.ctx\[0\] = 4 is outside \[0, 4\)", {"row.ctx": put(0, 4)})
        rejects(r"user\.cats\[0, 0\] = 0\.5 is not an integer code", {"user.cats": put((0, 0), 0.5)})
        rejects(r"row\.view\[1\] = -1 is outside", {"row.view": put(1, -1)})
        full = int(np.flatnonzero(arrays["seq.len"] == model.schema.seq_length)[0])
        rejects(rf"seq\.age\[{full}, 0\] = 24 is outside \[0, 24\)", {"seq.age": put((full, 0), 24)})
        rejects(rf"seq\.content\[{full}, 0, 0\] = nan is not finite",
                {"seq.content": put((full, 0, 0), np.nan), "seq.oov": put((full, 0), 0)})
        rejects(r"seq\.len\[0\] = 8 is outside \[0, 8\)", {"seq.len": put(0, 8)})
        rejects(r"missing input tensor.*row\.view", drop="row.view")
        bad_shape = dict(arrays, **{"user.dense": np.zeros((4, 3), np.float32)})
        with self.assertRaisesRegex(coded_inputs.InputError, r"user\.dense: shape \[4, 3\]"):
            coded_inputs.prepare(model, bad_shape, meta)
        bad_rows = dict(arrays, **{"row.view": np.zeros(9, np.float32)})
        with self.assertRaisesRegex(coded_inputs.InputError, r"row\.view: shape \[9\], want N = 10"):
            coded_inputs.prepare(model, bad_rows, meta)
        blocks = json.loads(meta[coded_inputs.META_KEY])
        blocks["user_cats"] = blocks["user_cats"][::-1]
        rejects("does not match the export's config", metadata={coded_inputs.META_KEY: json.dumps(blocks)})
        rejects("tandem.inputs", metadata={})
        del blocks["ad_dense"]
        blocks["user_cats"] = blocks["user_cats"][::-1]
        rejects("no 'ad_dense' block", metadata={coded_inputs.META_KEY: json.dumps(blocks)})

    def test_null_blocks(self):
        """Blocks as Go's engine.WriteInputs writes them: all six keys, unused or empty ones null."""
        for name in ("l2", "l1_user", "l1_ad"):
            model = load(name)
            arrays, meta = random_inputs(model, u=3, n=4)
            blocks = coded_inputs.config_blocks(model.schema)
            for key in coded_inputs.BLOCKS:
                if key not in coded_inputs.NEEDED_BLOCKS[model.kind]:
                    blocks[key] = None
            forward(model, arrays, {coded_inputs.META_KEY: json.dumps(blocks)})
            needed = coded_inputs.NEEDED_BLOCKS[model.kind][0]
            blocks[needed] = None
            with self.assertRaisesRegex(coded_inputs.InputError, f"no '{needed}' block"):
                coded_inputs.prepare(model, arrays, {coded_inputs.META_KEY: json.dumps(blocks)})
        # A block the export does not read may be null or empty, but not different from the config.
        model = load("l1_ad")
        arrays, meta = random_inputs(model, n=4)
        blocks = dict(coded_inputs.config_blocks(model.schema), user_cats=["country"])
        with self.assertRaisesRegex(coded_inputs.InputError, r"tandem.inputs\['user_cats'\]"):
            coded_inputs.prepare(model, arrays, {coded_inputs.META_KEY: json.dumps(blocks)})

    def test_cli_end_to_end(self):
        cases = {"l2": {"logits": (7, 4), "probs": (7, 4)},
                 "l2_logistic": {"logits": (7, 4), "probs": (7, 4)},
                 "l1_user": {f"user.{t}": (3, 5) for t in ("click", "save", "long_click", "hide")},
                 "l1_ad": {f"ad.{t}": (7, 5) for t in ("click", "save", "long_click", "hide")}}
        for name, want in cases.items():
            inp = os.path.join(TMP, f"cli-{name}-in.safetensors")
            out = os.path.join(TMP, f"cli-{name}-out.safetensors")
            out64 = os.path.join(TMP, f"cli-{name}-out64.safetensors")
            rc, _, err = quiet("random-inputs", "--export", EXPORTS[name], "--out", inp, "--u", "3", "--n", "7")
            self.assertEqual(rc, 0, err)
            rc, stdout, err = quiet("run", "--export", EXPORTS[name], "--inputs", inp, "--out", out)
            self.assertEqual(rc, 0, err)
            self.assertEqual(stdout, "")
            self.assertEqual(len(err.splitlines()), 1, err)
            rc, _, err = quiet("run", "--export", EXPORTS[name], "--inputs", inp, "--out", out64, "--float64",
                               "--threads", "2")
            self.assertEqual(rc, 0, err)
            got, got64 = st.read(out), st.read(out64)
            self.assertEqual({k: v.shape for k, v in got.tensors.items()}, want)
            kind = {"l2": "l2", "l2_logistic": "l2", "l1_user": "l1.user", "l1_ad": "l1.ad"}[name]
            self.assertEqual(json.loads(got.metadata[torchref.OUTPUTS_META])["kind"], kind)
            for k, v in got.tensors.items():
                self.assertTrue(np.isfinite(v).all())
                np.testing.assert_allclose(v, got64.tensors[k], rtol=1e-4, atol=1e-5)
        # Inputs of the wrong kind are refused with the tensor named.
        rc, _, err = quiet("run", "--export", EXPORTS["l2"], "--inputs",
                           os.path.join(TMP, "cli-l1_ad-in.safetensors"), "--out", os.path.join(TMP, "x.safetensors"))
        self.assertEqual(rc, 2)
        self.assertIn("tandem.inputs", err)
        rc, _, err = quiet("run", "--export", EXPORTS["l2"], "--inputs", os.path.join(TMP, "absent.safetensors"),
                           "--out", os.path.join(TMP, "x.safetensors"))
        self.assertEqual(rc, 2)
        self.assertIn("absent.safetensors", err)

    def test_bench_smoke(self):
        rc, out, err = quiet("bench", "--export", EXPORTS["l2"], "--l2-shapes", "2x3", "--train-steps",
                             "--train-batch", "8", "--train-contexts", "3", "--warmup", "1", "--min-repeats", "2",
                             "--min-time", "0")
        self.assertEqual(rc, 0, err)
        result = json.loads(out)
        self.assertEqual(result["l2_shapes"][0]["rows"], 6)
        self.assertGreater(result["train"]["examples_per_s"], 0)
        rc, out, err = quiet("bench", "--export", EXPORTS["l1_user"], "--user-batches", "1,4", "--warmup", "0",
                             "--min-repeats", "1", "--min-time", "0")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["users"] for r in json.loads(out)["user_batches"]], [1, 4])
        rc, _, err = quiet("bench", "--export", EXPORTS["l1_user"], "--l2-shapes", "1x2")
        self.assertEqual(rc, 2)
        self.assertIn("does not apply", err)


@unittest.skipUnless(os.environ.get("TORCHREF_SAMPLE_DIR"), "set TORCHREF_SAMPLE_DIR to run real exports")
class SampleExportTest(unittest.TestCase):
    def test_sample_exports(self):
        root = os.environ["TORCHREF_SAMPLE_DIR"]
        paths = sorted(glob.glob(os.path.join(root, "l2_*.safetensors")) +
                       glob.glob(os.path.join(root, "l1", "*", "*.safetensors")))
        self.assertTrue(paths, f"no exports under {root}")
        for path in paths:
            model, _ = models.load_export(path)
            arrays, meta = random_inputs(model, u=4, n=12)
            f32 = forward(model, arrays, meta)
            f64 = forward(copy.deepcopy(model).double(), arrays, meta, torch.float64)
            for k, v in f32.items():
                self.assertTrue(np.isfinite(v).all(), f"{path} {k}")
                np.testing.assert_allclose(v, f64[k], rtol=1e-4, atol=1e-5, err_msg=f"{path} {k}")


if __name__ == "__main__":
    unittest.main()
