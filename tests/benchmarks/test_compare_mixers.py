"""benchmarks/compare_mixers.py end to end on tiny synthetic data (a smoke test of the script, not of accuracy)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

from conftest import ROOT, make_tiny_synthetic


def _run(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_mixers.py"), *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_compare_mixers_trains_every_variant_with_the_same_seed(tmp_path_factory, tmp_path):
    data = make_tiny_synthetic(tmp_path_factory)
    out = tmp_path / "compare"
    result = _run("-d", "synthetic", "-k", "gt", "--data-dir", str(data), "-str", "S1", "-ste", "S9", "-f", "9",
                  "-e", "1", "-cs", "16", "-dep", "1", "--clips-per-step", "4", "--seed", "7", "--threads", "1",
                  "--variants", "default,dilated", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]

    rows = {row["variant"]: row for row in json.loads((out / "summary.json").read_text())}
    assert set(rows) == {"default", "dilated"}
    for name, row in rows.items():
        console = (out / name / "console.txt").read_text()
        assert "-d synthetic" in console and "--seed 7" in console and "--threads 1" in console
        counts = re.search(r"(\d+) clips of 9 frames.* (\d+) steps per epoch", row["steps"])
        clips, per_epoch = int(counts.group(1)), int(counts.group(2))
        assert per_epoch == math.ceil(clips / 4) and row["step_count"] == per_epoch  # one epoch, 4 clips per step
        evaluated = json.loads((out / name / "best_epoch_eval.json").read_text())["average"]
        assert row["mpjpe"] == evaluated["mpjpe"] and row["p_mpjpe"] == evaluated["p_mpjpe"]
        assert 0 < row["p_mpjpe"] < row["mpjpe"] < 1000
    assert "fixed" in rows["default"]["model"] and "dilated" in rows["dilated"]["model"]
    # With one layer the dilated schedule has dilation 1, i.e. it IS the fixed model: the same seed must then give
    # the same weights, clip order and flips, hence the same errors (the comparison is paired, not luck of the draw).
    assert rows["default"]["mpjpe"] == rows["dilated"]["mpjpe"]


def test_compare_mixers_rejects_unknown_variants_in_one_line():
    result = _run("--variants", "default,nope")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --variants: unknown nope")
    assert "Traceback" not in result.stderr
