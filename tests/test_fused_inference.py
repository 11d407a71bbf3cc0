"""The fused CPU inference kernels (common/fused_inference.py, common/csrc/fused_blocks.cpp): the same function as the
paper-figure forward, kernel by kernel against independent computations, and when they are (not) used."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common import fused_inference
from common.mixers import FcMixer, GraphMixer, PoolMixer, sparse_rows
from common.model import H36M_17_PARENTS, apply_preset, build_model


@pytest.fixture(scope="module")
def ops():
    status = fused_inference.status()
    if not status.available:
        pytest.skip(f"fused CPU kernels not available here: {status.detail}")
    return getattr(torch.ops, fused_inference.NAMESPACE)


def _perturbed_model(preset: str, **overrides):
    torch.manual_seed(0)
    config = apply_preset(preset, {"num_frames": 9, "embed_dim": 32, "depth": 2, **overrides})
    model = build_model(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # away from zero biases / unit norms / the identity
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model


FUSED_CASES = [
    ("default", {}),
    ("poolformer", {}),  # pool + pool, layer scale, no shared stream norms
    ("default", {"layer_scale_init": 0.5}),
    ("default", {"spatial_mixer": "graph", "temporal_pool_schedule": "dilated"}),
    ("default", {"temporal_pool_schedule": "growing", "shared_stream_norms": False}),
    ("default", {"pool_size": 5, "embed_dim": 48}),  # 48 channels: the kernels' narrow (16-channel) loops
]


@pytest.mark.parametrize("preset,overrides", FUSED_CASES)
def test_fused_forward_computes_the_paper_figure_function(ops, preset, overrides):
    model = _perturbed_model(preset, **overrides)
    clips = torch.randn(3, 9, 17, 2)
    reference = model(clips)  # autograd on: the paper-figure forward
    calls = []
    run_block = fused_inference._run_block
    with torch.no_grad():
        assert fused_inference.applies(model, clips)
        fused_inference._run_block = lambda *args: calls.append(1) or run_block(*args)
        try:
            fused = model(clips)
        finally:
            fused_inference._run_block = run_block
        with fused_inference.eager_only():
            eager = model(clips)
    assert len(calls) == 2 * model.config.depth  # every block ran through the kernels
    assert reference.abs().max() > 0.3
    torch.testing.assert_close(fused, reference.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(fused, eager, rtol=0, atol=1e-5)
    assert not torch.equal(fused, eager)  # two different computations (rounding differs), both right


def test_fused_path_is_deterministic_and_matches_under_inference_mode(ops):
    model = _perturbed_model("default")
    clips = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        first = model(clips)
    with torch.inference_mode():
        second = model(clips)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_fused_path_is_used_only_where_it_applies(ops, monkeypatch):
    model = _perturbed_model("default")
    clips = torch.randn(1, 9, 17, 2)
    with torch.no_grad():
        assert fused_inference.applies(model, clips)
        assert not fused_inference.applies(model, clips.double())  # float32 only
        with fused_inference.eager_only():
            assert not fused_inference.applies(model, clips)
        monkeypatch.setenv(fused_inference.ENV_SWITCH, "0")
        assert not fused_inference.applies(model, clips)
        monkeypatch.delenv(fused_inference.ENV_SWITCH)
        assert not fused_inference.applies(_perturbed_model("mixste", num_heads=4), clips)  # attention: eager path
        assert not fused_inference.applies(_perturbed_model("default", embed_dim=24), clips)  # not 16-channel vectors
        model.train()
        assert not fused_inference.applies(model, clips)
    model.eval()
    assert not fused_inference.applies(model, clips)  # autograd on


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


@pytest.mark.parametrize("temporal", [True, False])
@pytest.mark.parametrize("channels", [16, 64])
def test_norm_mix_norm_kernel_against_an_independent_computation(ops, temporal, channels):
    torch.manual_seed(3)
    b, f, j, c = 2, 11, 17, channels
    y = torch.randn(b, f, j, c, dtype=torch.float64)
    vectors = [1 + 0.3 * torch.randn(c, dtype=torch.float64) if k % 2 == 0 else 0.3 * torch.randn(c,
               dtype=torch.float64) for k in range(6)]
    pre_w, pre_b, w1, b1, w2, b2 = vectors
    pos = torch.randn(f, c, dtype=torch.float64)
    scale = 0.5 + torch.rand(c, dtype=torch.float64)
    res_bias = torch.randn(c, dtype=torch.float64)
    length = f if temporal else j
    # a random sparse mixing matrix with up to 5 neighbours per token (temporal), a dense one (spatial: 17 joints, so
    # four blocks of four rows and one row left over in the dense loop)
    mixing = torch.randn(length, length, dtype=torch.float64)
    if temporal:
        offsets = torch.arange(length)[:, None] - torch.arange(length)[None, :]
        mixing = mixing * (offsets.abs() <= 2)
    # independent: float64, the mixing as an einsum over the token axis
    x = _layer_norm(y, pre_w, pre_b, 1e-6) + pos[None, :, None, :]
    n1 = _layer_norm(x, w1, b1, 1e-5)
    mixed = torch.einsum("ts,bsjc->btjc", mixing, n1) if temporal else torch.einsum("ts,bfsc->bftc", mixing, n1)
    x = x + scale * mixed
    expected_residual, expected_normed = x + res_bias, _layer_norm(x, w2, b2, 1e-6)

    f32 = [t.float().contiguous() for t in (y, pre_w, pre_b, pos, w1, b1, scale, w2, b2, res_bias)]
    y32, pre_w, pre_b, pos, w1, b1, scale, w2, b2, res_bias = f32
    rows, cols, values = sparse_rows(mixing.float(), keep_zeros=not temporal)
    residual, normed = ops.norm_mix_norm(y32, temporal, pre_w, pre_b, 1e-6, pos, w1, b1, 1e-5, rows, cols, values,
                                         scale, w2, b2, 1e-6, res_bias)
    assert residual.data_ptr() == y32.data_ptr()  # written over the input
    torch.testing.assert_close(residual.double(), expected_residual, rtol=0, atol=2e-5)
    torch.testing.assert_close(normed.double(), expected_normed, rtol=0, atol=2e-5)
    assert expected_residual.abs().max() > 3


def test_norm_mix_norm_kernel_without_the_optional_inputs(ops):
    torch.manual_seed(4)
    y = torch.randn(1, 7, 17, 32)
    w1, b1, w2, b2 = 1 + torch.randn(32) * 0.2, torch.randn(32), 1 + torch.randn(32) * 0.2, torch.randn(32)
    mixer = PoolMixer("temporal", window=3)
    rows, cols, values = mixer.sparse_mixing(7)
    residual, normed = ops.norm_mix_norm(y.clone(), True, None, None, 0.0, None, w1, b1, 1e-6, rows, cols, values,
                                         None, w2, b2, 1e-6, None)
    n1 = F.layer_norm(y, (32,), w1, b1, 1e-6)
    x = y + mixer(n1)
    torch.testing.assert_close(residual, x, rtol=0, atol=1e-5)
    torch.testing.assert_close(normed, F.layer_norm(x, (32,), w2, b2, 1e-6), rtol=0, atol=1e-5)


def test_norm_mix_norm_kernel_rejects_bad_inputs(ops):
    y, v = torch.randn(1, 5, 17, 16), torch.ones(16)
    rows, cols, values = PoolMixer("temporal").sparse_mixing(5)
    args = [True, None, None, 0.0, None, v, v, 1e-6, rows, cols, values, None, v, v, 1e-6, None]
    with pytest.raises(RuntimeError, match="multiple of 16"):
        ops.norm_mix_norm(torch.randn(1, 5, 17, 8), *args)
    with pytest.raises(RuntimeError, match="contiguous float32"):
        ops.norm_mix_norm(y.double(), *args)
    bad_cols = cols.clone()
    bad_cols[0] = 5
    with pytest.raises(RuntimeError, match="mix_cols must index tokens 0..4"):
        ops.norm_mix_norm(y, True, None, None, 0.0, None, v, v, 1e-6, rows, bad_cols, values, None, v, v, 1e-6,
                          None)


def test_bias_gelu_kernel_is_exact_gelu(ops):
    hidden = torch.linspace(-12, 12, 4097 * 8).reshape(8, 4097 * 1)[:, :4096].contiguous()
    bias = torch.randn(4096)
    expected = F.gelu(hidden.double() + bias.double())  # exact (erf) GELU in float64
    got = ops.bias_gelu_(hidden, bias)
    assert got.data_ptr() == hidden.data_ptr()  # in place
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=2e-6)


def test_mixers_as_sparse_matrices_along_their_axis():
    # pooling, window 3, padding not counted: interior rows average 3 tokens, edge rows 2; minus the identity
    rows, cols, values = PoolMixer("temporal", window=3).sparse_mixing(5)
    dense = torch.zeros(5, 5)
    dense[torch.repeat_interleave(torch.arange(5), rows.diff()), cols] = values
    expected = torch.tensor([[1 / 2, 1 / 2, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0],
                             [0, 0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0, 1 / 2, 1 / 2]]) - torch.eye(5)
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-7)
    assert rows.tolist() == [0, 2, 5, 8, 11, 13]  # zeros dropped: 2 or 3 entries per row
    # dilation 2: token 2 of 5 averages tokens 0, 2, 4
    mixing = PoolMixer("spatial", window=3, dilation=2).mixing_matrix(5)
    torch.testing.assert_close(mixing[2], torch.tensor([1 / 3, 0, 1 / 3 - 1, 0, 1 / 3]), rtol=0, atol=1e-7)
    # fc: W - I, every entry kept (the kernels' dense loop)
    fc = FcMixer(17)
    rows, cols, values = fc.sparse_mixing(17)
    assert rows.tolist() == list(range(0, 17 * 18, 17))
    torch.testing.assert_close(values.view(17, 17), fc.weight.detach() - torch.eye(17), rtol=0, atol=0)
    # graph: the neighbour mean minus the identity; the Head (10) averages itself and its parent, the Neck (9)
    rows, cols, values = GraphMixer(H36M_17_PARENTS).sparse_mixing(17)
    head = slice(rows[10], rows[11])
    assert sorted(cols[head].tolist()) == [9, 10]
    with pytest.raises(ValueError, match="fc mixer has 17 joints, asked for 16"):
        fc.sparse_mixing(16)


def test_a_failed_build_is_reported_once_and_inference_runs_eager(monkeypatch, capsys):
    from torch.utils import cpp_extension

    def failing_load(**_):
        raise RuntimeError("Error building extension 'poolmixste_fused': no C++ compiler\nmore details")

    monkeypatch.setattr(fused_inference, "_status", None)
    monkeypatch.setattr(fused_inference, "_loaded", lambda: False)
    monkeypatch.setattr(cpp_extension, "load", failing_load)
    model = _perturbed_model("default")
    clips = torch.randn(1, 9, 17, 2)
    reference = model(clips).detach()
    with torch.no_grad():
        assert not fused_inference.applies(model, clips)
        out = model(clips)
        model(clips)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    status = fused_inference.status()
    assert not status.available
    assert status.detail == "could not be built (RuntimeError: Error building extension 'poolmixste_fused': no C++ " \
                            "compiler)"
    err = capsys.readouterr().err
    assert err.count("fused CPU inference kernels unavailable, using the eager inference path") == 1
