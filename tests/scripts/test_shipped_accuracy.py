"""The shipped models score on Human3.6M what docs/MODEL_ZOO.md says: `run.py --evaluate NAME` on S9's Directions
with ground-truth 2D (flip TTA, every frame once) gives the Directions row of the model card's full S9 evaluation.

A retrained, damaged or differently loaded model, or a change of the evaluation code that moves the numbers, fails
here. Needs the licensed Human3.6M 3D in ../shared (skipped with the reason when it is absent).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, shared_path

from common.model import pretrained

# Directions group of S9 (20,220 frames of the four cameras): Protocol #1 / #2 in mm, from each model's full S9
# evaluation recorded in docs/MODEL_ZOO.md.
DIRECTIONS_S9_GT = {
    "h36m_f27": (40.10, 27.31),
    "h36m_f27_small": (45.14, 33.08),
    "h36m_f27_causal": (58.78, 42.63),
}


def test_every_shipped_model_has_its_reference_here():
    assert set(DIRECTIONS_S9_GT) == set(pretrained.PRETRAINED)


@pytest.mark.parametrize("name", sorted(DIRECTIONS_S9_GT))
def test_shipped_model_scores_what_the_model_card_says(name, tmp_path):
    data_3d = shared_path("data", "h36m_train", "data_3d_h36m.npz")
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-d", "h36m", "--data-3d", str(data_3d), "-k", "gt_projected",
         "-ste", "S9", "-a", "Directions", "-c", str(tmp_path), "--evaluate", name, "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "flip TTA: on" in result.stdout
    row = re.search(r"^Directions\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)", result.stdout, re.MULTILINE)
    assert row, result.stdout[-2000:]
    frames, p1, p2 = int(row.group(1)), float(row.group(2)), float(row.group(3))
    assert frames == 20220
    expected_p1, expected_p2 = DIRECTIONS_S9_GT[name]
    assert p1 == pytest.approx(expected_p1, abs=0.1) and p2 == pytest.approx(expected_p2, abs=0.1)
