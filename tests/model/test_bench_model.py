"""benchmarks/bench_model.py: its arithmetic, its operator counts, and one end-to-end run on the small configuration
(a smoke test of the script, not of speed: no timing is asserted)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from common.core.errors import UserError
from common.model.config import apply_preset
from common.model.metaformer import build_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_model.py"


def _run(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *flags], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def bench_model():
    spec = importlib.util.spec_from_file_location("bench_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_small_run_reports_every_preset_mode_ratio_profile_and_floor():
    result = _run("--configs", "small", "--presets", "mixste,default", "--repeats", "1", "--warmup", "0",
                  "--threads", "1", "--no-train", "--no-memory", "--profile", "--floor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for preset in ("mixste", "default"):
        assert any(line.split()[:3] == ["small", preset, "inference"] for line in lines), result.stdout
    assert any("default / mixste inference" in line for line in lines), result.stdout
    assert any(line.startswith("small default inference:") and "layer_norm" in line for line in lines), result.stdout
    assert any(line.startswith("small: default:") for line in lines), result.stdout  # --floor: pool presets only
    assert not any(line.startswith("small: mixste:") for line in lines), result.stdout


def test_ratio_stats_pair_the_rounds(bench_model):
    # rounds: 10/5 = 2.0, 9/4 = 2.25, 12/3 = 4.0; best-of 9/3 = 3.0; medians 10/4 = 2.5
    stats = bench_model.ratio_stats([10.0, 9.0, 12.0], [5.0, 4.0, 3.0])
    assert stats == pytest.approx({"best_of": 3.0, "of_medians": 2.5, "round_median": 2.25, "round_low": 2.0,
                                   "round_high": 4.0})


def test_floor_counts_every_required_operator_application(bench_model):
    for preset in ("default", "poolformer"):  # the counts are what a forward call really runs
        config = apply_preset(preset, {"num_frames": 9, "embed_dim": 16, "depth": 3})
        model = build_model(config).eval()
        calls = {"mlp_products": 0, "layer_norms": 0, "gelus": 0}
        for name, module in model.named_modules():
            key = ("layer_norms" if isinstance(module, nn.LayerNorm) else "mlp_products"
                   if name.endswith(("mlp.fc1", "mlp.fc2")) else "gelus" if name.endswith("mlp.act") else None)
            if key is not None:
                module.register_forward_hook(lambda *_, key=key, calls=calls: calls.__setitem__(key, calls[key] + 1))
        with torch.no_grad():
            model(torch.randn(1, 9, 17, 2))
        assert calls == bench_model.floor_counts(config), preset
    seconds = {"mlp_product": 0.014, "layer_norm": 0.0005, "gelu": 0.001}
    assert bench_model.floor_seconds({"mlp_products": 32, "layer_norms": 49, "gelus": 16}, seconds) == (
        pytest.approx(32 * 0.014 + 49 * 0.0005 + 16 * 0.001))


def test_profile_call_splits_matrix_products_from_the_rest(bench_model):
    model = build_model(apply_preset("default", {"num_frames": 9, "embed_dim": 16, "depth": 1})).eval()
    clip = torch.randn(1, 9, 17, 2)

    def step() -> None:
        with torch.inference_mode():
            model(clip)

    found = bench_model.profile_call(step, work_flop=1e6)
    assert 0 < found["matmul_share"] < 1
    names = [name for name, _ in found["others"]]
    assert "aten::native_layer_norm" in names and "aten::avg_pool2d" in names
    assert not any(name in bench_model.MATMUL_OPS for name in names)


def test_peak_memory_child_reports_the_peak_and_its_rise(bench_model):
    reports = []
    job = {"threads": 1, "preset": "default", "mode": "train", "batch": 1,
           "overrides": {"num_frames": 9, "embed_dim": 16, "depth": 1}}
    bench_model._peak_memory(job, type("Queue", (), {"put": staticmethod(reports.append)}))
    assert len(reports) == 1 and "error" not in reports[0], reports
    assert reports[0]["peak_mib"] > 0 and 0 <= reports[0]["rise_mib"] <= reports[0]["peak_mib"]


@pytest.mark.parametrize(("flags", "flag"), [(["--presets", "mixste,nope"], "--presets"),
                                             (["--configs", "huge"], "--configs"),
                                             (["--presets", "mixste", "--floor"], "--floor"),
                                             (["--repeats", "0"], "--repeats"),
                                             (["--drop-path", "1.5"], "--drop-path")])
def test_bad_flags_are_user_errors_naming_the_flag(bench_model, monkeypatch, flags, flag):
    monkeypatch.setattr(sys, "argv", ["bench_model.py", *flags])
    with pytest.raises(UserError, match=f"^{flag}"):
        bench_model.parse_args()
