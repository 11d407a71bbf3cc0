"""benchmarks/bench_model.py end to end on the small configuration (a smoke test of the script, not of speed)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from common.model import apply_preset, build_model

ROOT = Path(__file__).resolve().parents[1]


def _run(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_model.py"), *flags], cwd=ROOT, capture_output=True,
        text=True, timeout=600,
    )


def _bench_model_module():
    spec = importlib.util.spec_from_file_location("bench_model", ROOT / "benchmarks" / "bench_model.py")
    bench_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_model)
    return bench_model


def test_bench_model_prints_every_preset_and_mode_with_ratios():
    result = _run("--configs", "small", "--presets", "mixste,default", "--repeats", "2", "--warmup", "1",
                  "--threads", "1", "--drop-path", "0.1", "--no-memory", "--floor", "--compare-eager")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 thread(s), batch 1, compile=False, repeats 2 (+1 warm-up), drop path 0.1, malloc tuned" in out
    assert re.search(r"^fused CPU inference kernels \(non-attention presets, eval\): on \(", out, re.M), out
    number = r"\s+([\d.]+)"
    rows = re.findall(rf"^small\s+([\w/]+)\s+(inference|train){number * 4}\s+[\d.]+\s+-\s+-\s", out, re.M)
    # --compare-eager: default's inference once more with the fused kernels off (attention presets have none)
    assert {(preset, mode) for preset, mode, *_ in rows} == {
        (p, m) for p in ("mixste", "default") for m in ("inference", "train")
    } | {("default/eager", "inference")}
    assert re.search(r"small: default/eager / mixste inference throughput, best-of: [\d.]+x", out)
    for _, _, frames_per_s, best_frames_per_s, best_ms, gflops in rows:
        # best-of throughput is at least the median one, and the best time (printed to 0.1 ms) is 27 frames' worth
        assert float(best_frames_per_s) >= float(frames_per_s) > 0
        assert abs(27 / float(best_frames_per_s) * 1e3 - float(best_ms)) <= 0.051
        assert float(gflops) > 0
    for mode in ("inference", "train"):
        assert re.search(rf"small: default / mixste {mode} throughput, best-of: [\d.]+x \(ratio of medians [\d.]+x, "
                         r"per round [\d.]+x, range [\d.]+-[\d.]+x over 2 rounds\)", out)
    assert re.search(r"matmul ceiling \(best of all\): [\d.]+ GFLOP/s", out)
    # --floor: default's required operators (small: depth 4 -> 8 blocks, 2 * 8 + 8 stream norms + 1 head LayerNorms)
    floor = re.search(r"^small: default: 16 MLP products x ([\d.]+) ms \+ 25 LayerNorms x ([\d.]+) ms \+ 8 GELUs x "
                      r"([\d.]+) ms = ([\d.]+) ms \(([\d.]+)% of its best call, ([\d.]+) ms\); mixste's best call / "
                      r"floor = at most ([\d.]+)x$", out, re.M)
    assert floor, out
    product, norm, gelu, total, share, best, bound = map(float, floor.groups())
    # every printed number is rounded: terms to 0.005 ms, times to 0.05 ms, percentages and ratios to their last digit
    assert abs(16 * product + 25 * norm + 8 * gelu - total) <= 0.005 * 49 + 0.05
    best_ms = {preset: float(ms) for preset, mode, _, _, ms, _ in rows if mode == "inference"}
    assert abs(best - best_ms["default"]) <= 0.051
    assert abs(share - 100 * total / best) <= 0.05 + 100 * 0.05 * (1 / best + total / best**2)
    mixste = best_ms["mixste"]
    assert abs(bound - mixste / total) <= 0.005 + 0.05 * (1 / total + mixste / total**2)
    assert "small: mixste:" not in out  # attention presets have no such floor


def test_ratio_summary_pairs_the_rounds():
    bench_model = _bench_model_module()
    # rounds: 10/5 = 2.0, 9/4 = 2.25, 12/3 = 4.0 (median 2.25); best-of 9/3 = 3.0; medians 10/4 = 2.5
    assert bench_model.ratio_summary([10.0, 9.0, 12.0], [5.0, 4.0, 3.0]) == (
        "3.00x (ratio of medians 2.50x, per round 2.25x, range 2.00-4.00x over 3 rounds)"
    )


def test_floor_counts_every_required_operator_application():
    bench_model = _bench_model_module()
    for preset in ("default", "poolformer"):  # the counts are what a forward call really runs
        config = apply_preset(preset, {"num_frames": 9, "embed_dim": 16, "depth": 3})
        model = build_model(config).eval()
        calls = {"mlp_products": 0, "layer_norms": 0, "gelus": 0}

        for name, module in model.named_modules():
            key = ("layer_norms" if isinstance(module, nn.LayerNorm) else "mlp_products"
                   if name.endswith(("mlp.fc1", "mlp.fc2")) else "gelus" if name.endswith("mlp.act") else None)
            if key is not None:
                module.register_forward_hook(lambda *_, key=key, calls=calls: calls.__setitem__(key, calls[key] + 1))
        model(torch.randn(1, 9, 17, 2))  # autograd on: the blocks' module path (same operators), so the hooks fire
        assert calls == bench_model.floor_counts(config), preset

    paper = {"num_frames": 243, "embed_dim": 512, "depth": 8}
    # 16 blocks: 2 MLP products and 1 GELU each; LayerNorms 2 per block + 16 shared stream norms + the head's
    assert bench_model.floor_counts(apply_preset("default", paper)) == {
        "mlp_products": 32, "layer_norms": 49, "gelus": 16}
    assert bench_model.floor_counts(apply_preset("poolformer", paper)) == {
        "mlp_products": 32, "layer_norms": 33, "gelus": 16}
    seconds = {"mlp_product": 0.014, "layer_norm": 0.0005, "gelu": 0.001}
    assert bench_model.floor_seconds({"mlp_products": 32, "layer_norms": 49, "gelus": 16}, seconds) == (
        pytest.approx(32 * 0.014 + 49 * 0.0005 + 16 * 0.001))


def test_bench_model_profile_splits_time_into_matrix_products_and_the_rest():
    result = _run("--configs", "small", "--presets", "mixste,default", "--repeats", "1", "--warmup", "1",
                  "--threads", "1", "--no-memory", "--profile", "--compare-eager")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^small ([\w/]+) (inference|train): ([\d.]+) ms, matrix products ([\d.]+)% \(([\d.]+) GFLOP/s "
                      r"inside them\), other ([\d.]+)%: (.*)$", result.stdout, re.M)
    assert {(preset, mode) for preset, mode, *_ in rows} == {
        (p, m) for p in ("mixste", "default") for m in ("inference", "train")
    } | {("default/eager", "inference")}
    shares = {}
    for preset, mode, total_ms, matmul, matmul_gflops, other, top in rows:
        assert float(total_ms) > 0 and 0 < float(matmul) < 100 and float(matmul_gflops) > 0
        assert abs(float(matmul) + float(other) - 100) <= 0.11
        # every preset normalises every block: in LayerNorm, or (default's inference) inside the fused block kernel
        fused = preset == "default" and mode == "inference"
        assert ("poolmixste_fused::norm_mix_norm" if fused else "layer_norm") in top, top
        assert ("poolmixste_fused" in top) == fused, top
        shares[preset, mode] = float(matmul)
    # MixSTE's extra work is all matrix products (qkv, attention, projection): a larger share of its time than in the
    # eager pool model, whose LayerNorms, pooling and residual adds are separate passes
    assert shares["mixste", "inference"] > shares["default/eager", "inference"]


def test_bench_model_no_fused_runs_the_eager_path():
    result = _run("--configs", "small", "--presets", "default", "--no-train", "--no-memory", "--repeats", "1",
                  "--warmup", "0", "--threads", "1", "--profile", "--no-fused")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^fused CPU inference kernels \(non-attention presets, eval\): off \(turned off by "
                     r"POOLMIXSTE_FUSED_KERNELS=0\)$", result.stdout, re.M), result.stdout
    profile = re.search(r"^small default inference: .*$", result.stdout, re.M).group(0)
    assert "layer_norm" in profile and "poolmixste_fused" not in profile


def test_bench_model_rejects_bad_flags_in_one_line():
    result = _run("--presets", "mixste,nope")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --presets: unknown nope")
    assert "Traceback" not in result.stderr


def test_bench_model_compare_eager_needs_the_fused_kernels_on():
    result = _run("--no-fused", "--compare-eager")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --compare-eager: compares the fused kernels with the eager path; drop --no-fused")


def test_bench_model_floor_needs_a_pool_preset():
    result = _run("--presets", "mixste", "--floor")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --floor: needs a preset without attention in --presets (the floor is of the pool models)")
    assert "Traceback" not in result.stderr
