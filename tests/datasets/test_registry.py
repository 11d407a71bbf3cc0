"""common/datasets/registry.py: dataset names, file naming and the errors of `load_dataset` on bad 3D files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, save_npz

from common.core.errors import UserError
from common.datasets.registry import DATASET_NAMES, default_paths, load_dataset


def test_names_and_default_paths(tmp_path):
    assert DATASET_NAMES == ("h36m", "humaneva15", "mpi_inf_3dhp", "synthetic", "custom")
    assert default_paths("h36m", "cpn", tmp_path) == (tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_cpn.npz")
    assert default_paths("mpi_inf_3dhp", "gt", tmp_path) == (tmp_path, None)
    assert default_paths("mpi_inf_3dhp", "x", tmp_path) == (tmp_path, tmp_path / "data_2d_mpi_inf_3dhp_x.npz")


def test_bad_3d_files(tmp_path):
    with pytest.raises(UserError, match="missing.npz: h36m dataset file not found"):
        load_dataset("h36m", tmp_path / "missing.npz")
    with pytest.raises(UserError, match="unknown dataset 'h37m'"):
        load_dataset("h37m", tmp_path)
    np.savez(tmp_path / "keys.npz", poses=np.zeros(3))
    with pytest.raises(UserError, match="keys.npz: Human3.6M 3D file lacks the key\\(s\\) positions_3d"):
        load_dataset("h36m", tmp_path / "keys.npz")
    save_npz(tmp_path / "shape.npz", positions_3d={"S1": {"Walk": np.zeros((5, 20, 3))}})
    with pytest.raises(UserError, match=r"shape.npz: positions_3d\['S1'\]\['Walk'\]: expected a \(T, 32 or 17, 3\)"):
        load_dataset("h36m", tmp_path / "shape.npz")
    nan = np.zeros((5, 32, 3))
    nan[2, 3, 1] = np.nan
    save_npz(tmp_path / "nan.npz", positions_3d={"S1": {"Walk": nan}})
    with pytest.raises(UserError, match=r"nan.npz: positions_3d\['S1'\]\['Walk'\]: NaN/inf coordinate .*\(2, 3, 1\)"):
        load_dataset("h36m", tmp_path / "nan.npz")
    save_npz(tmp_path / "subj.npz", positions_3d={"S42": {"Walk": np.zeros((5, 32, 3))}})
    with pytest.raises(UserError, match="subj.npz: unknown Human3.6M subject 'S42'"):
        load_dataset("h36m", tmp_path / "subj.npz")
    np.savez(tmp_path / "notdict.npz", positions_3d=np.zeros((3, 17, 3)))
    with pytest.raises(UserError, match="notdict.npz: 'positions_3d' must be a pickled dict"):
        load_dataset("h36m", tmp_path / "notdict.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="garbage.npz: not a readable"):
        load_dataset("synthetic", tmp_path / "garbage.npz")
    save_npz(tmp_path / "cams.npz", positions_3d={"S1": {"W": np.zeros((5, 17, 3))}}, cameras={"S1": [{"id": "x"}]})
    with pytest.raises(UserError, match=r"cams.npz: cameras\['S1'\]\[0\]: camera lacks the key\(s\) res_w"):
        load_dataset("synthetic", tmp_path / "cams.npz")


def test_user_error_is_one_line_and_exit_2(tmp_path):
    code = (
        "from common.core.errors import run_cli\n"
        "from common.datasets.registry import load_dataset\n"
        f"run_cli(lambda: load_dataset('h36m', {str(tmp_path / 'nope.npz')!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.npz'}: h36m dataset file not found"]
