"""Tests of the Human3.6M preparation scripts and of the preparation helpers of common/datasets.

Checks against independent sources: the shared VideoPose3D-built npz files (exact equality), the archive's own
``cameras.h5`` calibration projected with the 3d-pose-baseline formulas written out here (not the project's camera
code), and small CDF / detection files written here in the real layouts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT, detectron2_file, shared_path

from common.core.errors import UserError
from common.geometry.skeleton import H36M_17_KEPT
from data import prepare_data_2d_h36m_generic, prepare_data_2d_h36m_sh, prepare_data_h36m

CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
SAMPLE_ACTIONS = {"S1": ["Directions 1", "Walking"], "S9": ["Directions 1", "Walking"]}


def load(path: Path, key: str):
    with np.load(path, allow_pickle=True) as data:
        return data[key].item()


def archive_projection(cameras_h5: Path, subject: str, camera_index: int, positions_m: np.ndarray) -> np.ndarray:
    """3d-pose-baseline's radial/tangential projection with the raw ``cameras.h5`` values (mm, R as stored)."""
    with h5py.File(cameras_h5, "r") as handle:
        cam = handle[f"subject{subject[1:]}/camera{camera_index + 1}"]
        rotation, position = cam["R"][()], cam["T"][()].reshape(3)
        focal, center = cam["f"][()].reshape(2), cam["c"][()].reshape(2)
        k, p = cam["k"][()].reshape(3), cam["p"][()].reshape(2)
    in_camera = (positions_m.astype(np.float64) * 1000 - position) @ rotation  # R^T (P - T)
    x = in_camera[..., :2] / in_camera[..., 2:]
    r2 = (x**2).sum(-1, keepdims=True)
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tangential = p[0] * x[..., 1:2] + p[1] * x[..., 0:1]
    distorted = x * (radial + tangential) + np.array([p[1], p[0]]) * r2
    return focal * distorted + center


# --- data_3d_h36m from the archive --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive_outputs(tmp_path_factory) -> Path:
    sample = shared_path("data", "h36m", "archive_sample")
    out = tmp_path_factory.mktemp("archive")
    prepare_data_h36m.main(["--from-archive", str(sample), "--output-dir", str(out)])
    return out


def test_archive_3d_identical_to_videopose3d_build(archive_outputs):
    reference = load(shared_path("data", "h36m", "data_3d_h36m.npz"), "positions_3d")
    ours = load(archive_outputs / "data_3d_h36m.npz", "positions_3d")
    assert {s: sorted(a) for s, a in ours.items()} == SAMPLE_ACTIONS
    for subject, actions in ours.items():
        for action, poses in actions.items():
            assert poses.dtype == np.float32 and poses.shape[1:] == (32, 3)
            np.testing.assert_array_equal(poses, reference[subject][action])


def test_archive_2d_gt_matches_independent_projection(archive_outputs):
    cameras_h5 = shared_path("data", "h36m", "archive_sample", "h36m", "cameras.h5")
    positions_3d = load(archive_outputs / "data_3d_h36m.npz", "positions_3d")
    with np.load(archive_outputs / "data_2d_h36m_gt.npz", allow_pickle=True) as data:
        positions_2d, metadata = data["positions_2d"].item(), data["metadata"].item()
    assert metadata == {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
    }
    for subject in ("S1", "S9"):
        for action in ("Walking", "Directions 1"):
            views = positions_2d[subject][action]
            joints = positions_3d[subject][action][:, list(H36M_17_KEPT)]
            assert len(views) == 4
            for index, view in enumerate(views):
                assert view.dtype == np.float32 and view.shape == (len(joints), 17, 2)
                expected = archive_projection(cameras_h5, subject, index, joints)
                np.testing.assert_allclose(view, expected, atol=2e-3)
    # and the projection sits where the real detector found the person: median error of SH detections about 9 px
    sh = load(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), "positions_2d")
    mpii_to_h36m = {0: 3, 1: 2, 2: 1, 3: 4, 4: 5, 5: 6, 6: 0, 8: 8, 10: 16, 11: 15, 12: 14, 13: 11, 14: 12, 15: 13}
    gt = positions_2d["S1"]["Walking"][0][:, list(mpii_to_h36m.values())]
    det = sh["S1"]["Walking"][0][:, list(mpii_to_h36m)]
    assert 4.0 < np.median(np.linalg.norm(gt - det, axis=-1)) < 15.0


def test_zip_archive_gives_the_same_files(archive_outputs, tmp_path):
    sample = shared_path("data", "h36m", "archive_sample")
    archive = tmp_path / "h36m.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as handle:
        for path in sorted(sample.rglob("*.h5")):
            if "StackedHourglass" not in path.parts:
                handle.write(path, path.relative_to(sample).as_posix())
    out = tmp_path / "out"
    out.mkdir()
    prepare_data_h36m.main(["--from-archive", str(archive), "--output-dir", str(out), "--subjects", "S9"])
    ours = load(out / "data_3d_h36m.npz", "positions_3d")
    reference = load(archive_outputs / "data_3d_h36m.npz", "positions_3d")
    assert list(ours) == ["S9"]
    for action in ("Walking", "Directions 1"):
        np.testing.assert_array_equal(ours["S9"][action], reference["S9"][action])


def test_refuses_to_overwrite_and_overwrites_on_request(archive_outputs, tmp_path):
    sample = shared_path("data", "h36m", "archive_sample")
    out = tmp_path / "out"
    out.mkdir()
    (out / "data_2d_h36m_gt.npz").write_bytes(b"old")
    with pytest.raises(UserError, match="already exists"):
        prepare_data_h36m.main(["--from-archive", str(sample), "--output-dir", str(out), "--subjects", "S1"])
    assert (out / "data_2d_h36m_gt.npz").read_bytes() == b"old"
    assert not (out / "data_3d_h36m.npz").exists()
    prepare_data_h36m.main(["--from-archive", str(sample), "--output-dir", str(out), "--subjects", "S1", "--overwrite"])
    assert list(load(out / "data_2d_h36m_gt.npz", "positions_2d")) == ["S1"]
    assert not list(out.glob("*.tmp*"))


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--from-archive"):
        prepare_data_h36m.main(["--from-archive", str(tmp_path / "missing.zip"), "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match="--subjects"):
        prepare_data_h36m.main(["--from-source-cdf", str(tmp_path), "--output-dir", str(tmp_path), "--subjects", "S2"])
    with pytest.raises(UserError, match="no S\\*/MyPoseFeatures"):
        prepare_data_h36m.main(["--from-source-cdf", str(tmp_path), "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match="--output-dir"):
        prepare_data_h36m.main(["--from-source-cdf", str(tmp_path), "--output-dir", str(tmp_path / "nope")])


def test_cli_runs_from_another_directory_and_reports_errors_in_one_line(tmp_path):
    script = ROOT / "data" / "prepare_data_h36m.py"
    result = subprocess.run(
        [sys.executable, str(script), "--from-archive", str(tmp_path / "absent"), "--output-dir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: --from-archive {tmp_path / 'absent'}: not found"]


# --- data_3d_h36m from the official CDF files ---------------------------------------------------------------------


def write_cdf(path: Path, poses_mm: np.ndarray) -> None:
    """A D3_Positions CDF file as distributed: variable ``Pose`` with one record of (T, 96) millimetres."""
    from cdflib.cdfwrite import CDF

    path.parent.mkdir(parents=True, exist_ok=True)
    flat = poses_mm.reshape(1, len(poses_mm), 96).astype(np.float32)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"})
    spec = {"Variable": "Pose", "Data_Type": CDF.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True}
    spec["Dim_Sizes"] = [len(poses_mm), 96]
    cdf.write_var(spec, var_attrs={}, var_data=flat)
    cdf.close()


def test_cdf_conversion_with_canonical_names_and_s11_directions_dropped(tmp_path, capsys):
    rng = np.random.default_rng(3)
    files = {
        ("S1", "Walking"): 12,
        ("S1", "TakingPhoto 1"): 9,
        ("S1", "WalkingDog"): 7,
        ("S11", "Directions"): 5,
        ("S11", "Directions 1"): 6,
    }
    source = tmp_path / "h36m"
    written = {}
    for (subject, name), frames in files.items():
        poses = rng.uniform(-1500, 1500, (frames, 32, 3)) + [0, 0, 2500]
        poses = poses.astype(np.float32)
        write_cdf(source / subject / "MyPoseFeatures" / "D3_Positions" / f"{name}.cdf", poses)
        written[(subject, name)] = poses
    out = tmp_path / "out"
    out.mkdir()
    prepare_data_h36m.main(["--from-source-cdf", str(source), "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert "S11 Directions: dropped" in printed
    assert "S5: not found in the input" in printed
    assert "S1: missing action groups: Directions, Discussion" in printed

    positions = load(out / "data_3d_h36m.npz", "positions_3d")
    assert {s: sorted(a) for s, a in positions.items()} == {
        "S1": ["Photo 1", "WalkDog", "Walking"],
        "S11": ["Directions 1"],
    }
    renamed = {("S1", "Walking"): "Walking", ("S1", "TakingPhoto 1"): "Photo 1", ("S1", "WalkingDog"): "WalkDog"}
    renamed[("S11", "Directions 1")] = "Directions 1"
    for (subject, name), new_name in renamed.items():
        got = positions[subject][new_name]
        assert got.dtype == np.float32 and got.shape == written[(subject, name)].shape
        np.testing.assert_allclose(got, written[(subject, name)].astype(np.float64) / 1000, rtol=1e-6, atol=1e-7)

    positions_2d = load(out / "data_2d_h36m_gt.npz", "positions_2d")
    assert [len(v) for v in positions_2d["S1"].values()] == [4, 4, 4]
    assert positions_2d["S11"]["Directions 1"][2].shape == (6, 17, 2)


def test_unreadable_cdf_is_a_user_error(tmp_path):
    bad = tmp_path / "S1" / "MyPoseFeatures" / "D3_Positions" / "Walking.cdf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a cdf")
    with pytest.raises(UserError, match="Walking.cdf: not a readable CDF"):
        prepare_data_h36m.main(["--from-source-cdf", str(tmp_path), "--output-dir", str(tmp_path)])


# --- Stacked Hourglass detections ---------------------------------------------------------------------------------


def test_sh_pretrained_identical_to_videopose3d_build(tmp_path):
    sample = shared_path("data", "h36m", "archive_sample")
    reference_path = shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz")
    prepare_data_2d_h36m_sh.main(["-pt", str(sample), "--output-dir", str(tmp_path)])
    with np.load(tmp_path / "data_2d_h36m_sh_pt_mpii.npz", allow_pickle=True) as data:
        ours, metadata = data["positions_2d"].item(), data["metadata"].item()
    reference = load(reference_path, "positions_2d")
    assert metadata["layout_name"] == "mpii" and metadata["num_joints"] == 16
    assert metadata["keypoints_symmetry"] == load(reference_path, "metadata")["keypoints_symmetry"]
    assert {s: sorted(a) for s, a in ours.items()} == SAMPLE_ACTIONS
    for subject, actions in ours.items():
        for action, views in actions.items():
            assert len(views) == 4
            for view, expected in zip(views, reference[subject][action]):
                assert view.dtype == np.float32
                np.testing.assert_array_equal(view, expected)


def test_sh_fine_tuned_from_tar_gz_with_a_missing_camera(tmp_path, capsys):
    sample = shared_path("data", "h36m", "archive_sample", "h36m")
    archive = tmp_path / "sh_ft.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as handle:
        for path in sorted((sample / "S1" / "StackedHourglass").glob("*.h5")):
            if path.name == "Walking.60457274.h5":
                continue  # one camera missing -> the action is reported and dropped
            handle.add(path, f"S1/StackedHourglassFineTuned240/{path.name}")
    prepare_data_2d_h36m_sh.main(["-ft", str(archive), "--output-dir", str(tmp_path), "--subjects", "S1"])
    assert "S1 Walking: no detections for camera(s) 60457274, action dropped" in capsys.readouterr().out
    ours = load(tmp_path / "data_2d_h36m_sh_ft_h36m.npz", "positions_2d")
    assert list(ours) == ["S1"] and list(ours["S1"]) == ["Directions 1"]
    with h5py.File(sample / "S1" / "StackedHourglass" / "Directions_1.58860488.h5", "r") as handle:
        np.testing.assert_array_equal(ours["S1"]["Directions 1"][2], handle["poses"][()].astype(np.float32))
    assert not (tmp_path / "data_2d_h36m_sh_pt_mpii.npz").exists()


# --- generic per-video detections ---------------------------------------------------------------------------------


def test_generic_h36m_detections(tmp_path, capsys):
    rng = np.random.default_rng(2)
    source = tmp_path / "detections"
    (source / "S9").mkdir(parents=True)
    (source / "S11").mkdir()
    expected = {}
    for index, camera in enumerate(CAMERA_IDS):
        expected[index] = detectron2_file(source / "S9" / f"TakingPhoto 1.{camera}.mp4.npz", rng, frames=5, empty=set())
        detectron2_file(source / "S11" / f"Directions.{camera}.mp4.npz", rng, frames=4, empty=set())
    own = rng.uniform(0, 900, (4, 17, 3)).astype(np.float32)
    for camera in CAMERA_IDS[:3]:
        np.savez(source / "S9" / f"Walking.{camera}.mp4.npz", keypoints=own, metadata={"w": 1000, "h": 1000})
    (source / "S9" / "notes.npz").write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    prepare_data_2d_h36m_generic.main(["-i", str(source), "-o", "detectron2_pt_coco", "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert "S11 Directions (camera 54138969): dropped" in printed
    assert "S9 Walking: no detections for camera(s) 60457274, action dropped" in printed
    assert "notes.npz: not named" in printed
    with np.load(out / "data_2d_h36m_detectron2_pt_coco.npz", allow_pickle=True) as data:
        positions, metadata = data["positions_2d"].item(), data["metadata"].item()
    assert metadata["layout_name"] == "coco" and metadata["num_joints"] == 17
    assert list(positions) == ["S9"] and list(positions["S9"]) == ["Photo 1"]
    for index in range(4):
        np.testing.assert_array_equal(positions["S9"]["Photo 1"][index], expected[index][..., :2])
    with pytest.raises(UserError, match="the chosen layout has 16"):
        prepare_data_2d_h36m_generic.main(
            ["-i", str(source), "-o", "x", "--layout", "mpii", "--output-dir", str(out)]
        )


def test_generic_requires_detection_files(tmp_path):
    shutil.rmtree(tmp_path / "none", ignore_errors=True)
    (tmp_path / "none" / "S1").mkdir(parents=True)
    with pytest.raises(UserError, match="no S\\*/<Action>"):
        prepare_data_2d_h36m_generic.main(["-i", str(tmp_path / "none"), "-o", "cpn", "--output-dir", str(tmp_path)])
