"""common/cli/run_data.py: data-file hints that name real scripts, and no silently dropped test sequences."""

from __future__ import annotations

import re
from argparse import Namespace

import numpy as np
import pytest
from conftest import ROOT, make_tiny_synthetic

from common.cli.run_arguments import parse_args
from common.cli.run_data import DATA_HINTS, load_run_data, missing_sequences
from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import load_dataset


def test_every_hint_names_files_that_exist():
    for dataset, hint in DATA_HINTS.items():
        for script in re.findall(r"[\w/]+\.py", hint):
            if script.startswith(("data/", "inference/")):
                assert (ROOT / script).is_file(), f"{dataset}: {script} does not exist"
        for readme in re.findall(r"[\w/]+README\.md", hint):
            assert (ROOT / readme).is_file(), readme


@pytest.fixture(scope="module")
def partial_2d(tmp_path_factory):
    """Tiny synthetic data whose 2D file lacks S9 'Sitting' and camera 2 of S9 'Walking 1'."""
    directory = make_tiny_synthetic(tmp_path_factory, "Walking,Sitting")
    path = directory / "data_2d_synthetic_gt.npz"
    with np.load(path, allow_pickle=True) as archive:
        contents = {key: archive[key] for key in archive.files}
    positions = contents["positions_2d"].item()
    del positions["S9"]["Sitting"]
    positions["S9"]["Walking 1"][2] = None
    contents["positions_2d"] = np.array(positions, dtype=object)
    partial = directory / "data_2d_synthetic_partial.npz"
    np.savez(partial, **contents)
    return directory


def _args(directory, *extra) -> Namespace:
    return parse_args(["-d", "synthetic", "-k", "partial", "--data-dir", str(directory), "-str", "S1", "-ste", "S9",
                       *extra])


def test_missing_sequences_lists_3d_without_2d(partial_2d):
    dataset = load_dataset("synthetic", partial_2d / "data_3d_synthetic.npz")
    keypoints = load_keypoints(partial_2d / "data_2d_synthetic_partial.npz", dataset)
    missing = missing_sequences(dataset, keypoints, ["S9"], None)
    assert sorted(missing) == ["S9 / Sitting / camera 0", "S9 / Sitting / camera 1", "S9 / Sitting / camera 2",
                               "S9 / Sitting / camera 3", "S9 / Walking 1 / camera 2"]
    assert missing_sequences(dataset, keypoints, ["S1"], None) == []
    assert missing_sequences(dataset, keypoints, ["S9"], ["Walking"]) == ["S9 / Walking 1 / camera 2"]


def test_protocol_with_missing_test_sequences_is_an_error_unless_actions_are_selected(partial_2d):
    with pytest.raises(UserError) as error:
        load_run_data(_args(partial_2d), print)
    message = str(error.value)
    assert "5 test sequence(s) have 3D but no 2D keypoints" in message and "S9 / Sitting / camera 0" in message
    assert "-a" in message and "\n" not in message

    notes = []
    data = load_run_data(_args(partial_2d, "-a", "Walking"), notes.append)
    assert len(data.test) == 7  # Walking (4 cameras) + Walking 1 (3 of 4)
    assert [n for n in notes if "S9 / Walking 1 / camera 2" in n and "skipped" in n]
