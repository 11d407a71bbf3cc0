"""benchmarks/bench_model.py end to end on the small configuration (a smoke test of the script, not of speed)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_model.py"), *flags], cwd=ROOT, capture_output=True,
        text=True, timeout=600,
    )


def test_bench_model_prints_every_preset_and_mode_with_ratios():
    result = _run("--configs", "small", "--presets", "mixste,default", "--repeats", "2", "--warmup", "1",
                  "--threads", "1", "--drop-path", "0.1", "--no-memory")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 thread(s), batch 1, compile=False, repeats 2 (+1 warm-up), drop path 0.1, malloc tuned" in out
    number = r"\s+([\d.]+)"
    rows = re.findall(rf"^small\s+(\w+)\s+(inference|train){number * 4}\s+[\d.]+\s+-\s+-\s", out, re.M)
    assert {(preset, mode) for preset, mode, *_ in rows} == {
        (p, m) for p in ("mixste", "default") for m in ("inference", "train")
    }
    for _, _, frames_per_s, best_frames_per_s, best_ms, gflops in rows:
        # best-of throughput is at least the median one, and the best time (printed to 0.1 ms) is 27 frames' worth
        assert float(best_frames_per_s) >= float(frames_per_s) > 0
        assert abs(27 / float(best_frames_per_s) * 1e3 - float(best_ms)) <= 0.051
        assert float(gflops) > 0
    for mode in ("inference", "train"):
        assert re.search(rf"small: default / mixste {mode} throughput, best-of: [\d.]+x \(ratio of medians [\d.]+x, "
                         r"per round [\d.]+x, range [\d.]+-[\d.]+x over 2 rounds\)", out)
    assert re.search(r"matmul ceiling \(best of all\): [\d.]+ GFLOP/s", out)


def test_ratio_summary_pairs_the_rounds():
    spec = importlib.util.spec_from_file_location("bench_model", ROOT / "benchmarks" / "bench_model.py")
    bench_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_model)
    # rounds: 10/5 = 2.0, 9/4 = 2.25, 12/3 = 4.0 (median 2.25); best-of 9/3 = 3.0; medians 10/4 = 2.5
    assert bench_model.ratio_summary([10.0, 9.0, 12.0], [5.0, 4.0, 3.0]) == (
        "3.00x (ratio of medians 2.50x, per round 2.25x, range 2.00-4.00x over 3 rounds)"
    )


def test_bench_model_profile_splits_time_into_matrix_products_and_the_rest():
    result = _run("--configs", "small", "--presets", "mixste,default", "--repeats", "1", "--warmup", "1",
                  "--threads", "1", "--no-memory", "--profile")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^small (\w+) (inference|train): ([\d.]+) ms, matrix products ([\d.]+)% \(([\d.]+) GFLOP/s "
                      r"inside them\), other ([\d.]+)%: (.*)$", result.stdout, re.M)
    assert {(preset, mode) for preset, mode, *_ in rows} == {
        (p, m) for p in ("mixste", "default") for m in ("inference", "train")
    }
    shares = {}
    for preset, mode, total_ms, matmul, matmul_gflops, other, top in rows:
        assert float(total_ms) > 0 and 0 < float(matmul) < 100 and float(matmul_gflops) > 0
        assert abs(float(matmul) + float(other) - 100) <= 0.11
        assert "layer_norm" in top  # every preset normalises every block
        shares[preset, mode] = float(matmul)
    # MixSTE's extra work is all matrix products (qkv, attention, projection): a larger share of its time
    assert shares["mixste", "inference"] > shares["default", "inference"]


def test_bench_model_rejects_bad_flags_in_one_line():
    result = _run("--presets", "mixste,nope")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --presets: unknown nope")
    assert "Traceback" not in result.stderr
