"""Tests for common/datasets: the real shared files, the synthetic/custom formats and every kind of bad input."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, shared_path

from common.camera import image_coordinates, normalize_screen_coordinates, project_to_2d
from common.datasets import build_sequences, default_paths, load_dataset, load_keypoints
from common.datasets.base import CAMERA_KEYS
from common.errors import UserError
from common.h36m_cameras import h36m_cameras
from common.skeleton import H36M_17_KEPT, h36m_17

SH_META = {"num_joints": 16, "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]}
H36M_META = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
}


@pytest.fixture(scope="module")
def h36m():
    return load_dataset("h36m", shared_path("data", "h36m", "data_3d_h36m.npz"))


@pytest.fixture(scope="module")
def h36m_sh(h36m):
    return load_keypoints(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), h36m)


def _save(path, **arrays):
    np.savez(path, **{k: np.array(v, dtype=object) if isinstance(v, dict) else v for k, v in arrays.items()})
    return path


# --- Human3.6M (real files) ---------------------------------------------------------------------------------------


def test_h36m_joints_and_camera_space_match_mmpose(h36m):
    assert h36m.subjects() == ["S1", "S5", "S9"]
    assert h36m.skeleton == h36m_17() and h36m.fps == 50
    with np.load(shared_path("data", "h36m", "data_3d_h36m.npz"), allow_pickle=True) as data:
        raw = data["positions_3d"].item()["S1"]["Directions 1"]
    np.testing.assert_array_equal(h36m.positions_world("S1", "Directions 1"), raw[:, list(H36M_17_KEPT)])
    # mmpose's sample: S1 'Directions 1', camera 54138969, first frame; S = camera-space metres, part = pixels
    with np.load(shared_path("data", "h36m", "mmpose", "test_h36m_body3d.npz")) as data:
        mm_3d, mm_2d = data["S"][0, :, :3], data["part"][0, :, :2]
    np.testing.assert_allclose(h36m.positions_camera("S1", "Directions 1", 0)[0], mm_3d, atol=1e-5)
    camera = h36m.cameras("S1")[0]
    projected = project_to_2d(h36m.positions_camera("S1", "Directions 1", 0)[:1], camera.intrinsic)
    np.testing.assert_allclose(image_coordinates(projected[0], camera.res_w, camera.res_h), mm_2d, atol=0.01)


def test_h36m_sh_keypoints(h36m, h36m_sh):
    assert h36m_sh.layout.name == "mpii"
    assert set(h36m_sh.unmatched) == {("S5", "Discussion 2"), ("S5", "Discussion 3"), ("S9", "Discussion 1")}
    stream = h36m_sh.positions["S9"]["Walking"][2]
    assert stream.shape == (len(h36m.positions_world("S9", "Walking")), 17, 2) and stream.dtype == np.float32
    with np.load(shared_path("data", "h36m", "data_2d_h36m_sh_pt_mpii.npz"), allow_pickle=True) as data:
        raw = data["positions_2d"].item()["S9"]["Walking"][2]
    # RWrist is MPII joint 10, normalized with the camera's 1000x1000 resolution
    np.testing.assert_allclose(stream[:, 16], raw[:, 10] / 1000 * 2 - 1, atol=1e-6)


def test_h36m_sequences(h36m, h36m_sh):
    sequences = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking"])
    assert [(s.action, s.camera_index) for s in sequences] == [("Walking", i) for i in range(4)] + [
        ("Walking 1", i) for i in range(4)
    ]
    seq = sequences[1]
    camera_space = h36m.positions_camera("S9", "Walking", 1)
    np.testing.assert_array_equal(seq.poses_3d[:, 0], 0)
    np.testing.assert_allclose(seq.poses_3d + seq.root_3d[:, None], camera_space, atol=1e-6)
    assert seq.camera.id == "55011271" and seq.eval_joints == tuple(range(17))
    # the sequence's 3D projects close to its 2D detections (median SH error ~10 px = 0.02 normalized)
    projected = project_to_2d(seq.poses_3d + seq.root_3d[:, None], seq.camera.intrinsic)
    assert np.median(np.linalg.norm(projected - seq.poses_2d, axis=-1)) < 0.03
    short = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking 1"], downsample=2, subset=0.5, seed=3)
    full = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking 1"])
    assert len(short[0]) == round(len(full[0]) // 2 * 0.5)
    again = build_sequences(h36m, h36m_sh, ["S9"], actions=["Walking 1"], downsample=2, subset=0.5, seed=3)
    np.testing.assert_array_equal(short[0].poses_2d, again[0].poses_2d)
    start = np.flatnonzero((full[0].poses_2d == short[0].poses_2d[0]).all(axis=(1, 2)))[0]
    np.testing.assert_array_equal(short[0].poses_2d, full[0].poses_2d[start : start + 2 * len(short[0]) : 2])


def test_h36m_selection_errors(h36m, h36m_sh):
    with pytest.raises(UserError, match=r"data_2d_h36m_sh_pt_mpii\.npz: subject 'S11' not available"):
        build_sequences(h36m, h36m_sh, ["S11"])
    with pytest.raises(UserError, match="action\\(s\\) Dancing not found for subject\\(s\\) S9"):
        build_sequences(h36m, h36m_sh, ["S9"], actions=["Dancing"])
    with pytest.raises(UserError, match="--downsample"):
        build_sequences(h36m, h36m_sh, ["S9"], downsample=0)
    with pytest.raises(UserError, match="--subset"):
        build_sequences(h36m, h36m_sh, ["S9"], subset=1.5)
    with pytest.raises(UserError, match="action 'Dancing' of subject S9 not in the h36m data"):
        h36m.positions_world("S9", "Dancing")


# --- HumanEva-I and MPI-INF-3DHP (real files) ------------------------------------------------------------------------


def test_humaneva_cameras_reproject_the_ground_truth_2d():
    dataset = load_dataset("humaneva15", shared_path("data", "humaneva", "data_3d_humaneva15.npz"))
    keypoints = load_keypoints(shared_path("data", "humaneva", "data_2d_humaneva15_gt.npz"), dataset)
    assert dataset.fps == 60 and keypoints.layout.name == "humaneva15"
    assert dataset.evaluation_joints == (0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
    sequences = build_sequences(dataset, keypoints, dataset.test_subjects)
    assert {s.subject for s in sequences} == {"Validate/S1", "Validate/S2", "Validate/S3"}
    errors = []
    for seq in sequences:
        projected = project_to_2d(seq.poses_3d + seq.root_3d[:, None], seq.camera.intrinsic)
        pixels = (projected - seq.poses_2d)[:, list(seq.eval_joints)] * seq.camera.res_w / 2
        errors.append(np.linalg.norm(pixels, axis=-1).ravel())
    assert np.median(np.concatenate(errors)) < 0.1
    # 3D mapped to the model order: Spine synthesized between pelvis and thorax
    with np.load(shared_path("data", "humaneva", "data_3d_humaneva15.npz"), allow_pickle=True) as data:
        raw = data["positions_3d"].item()["Validate/S1"]["Walking 1 chunk0"]
    world = dataset.positions_world("Validate/S1", "Walking 1 chunk0")
    np.testing.assert_allclose(world[:, 7], (raw[:, 0] + raw[:, 1]) / 2, atol=1e-6)
    np.testing.assert_allclose(world[:, 16], raw[:, 7])  # RWrist


def test_mpi_inf_3dhp_from_mmpose_annotations():
    directory = shared_path("data", "mpi_inf_3dhp")
    dataset = load_dataset("mpi_inf_3dhp", directory)
    assert sorted(dataset.subjects()) == ["S4", "S8", "TS1", "TS2"]
    assert dataset.actions("S4") == ["Seq2"] and dataset.actions("TS1") == ["Test"]
    keypoints = load_keypoints(None, dataset)
    sequences = build_sequences(dataset, keypoints, ["S4", "TS2"])
    train, test = sequences
    assert train.camera.id == "S4_Seq2_Cam0" and (train.camera.res_w, train.camera.res_h) == (2048, 2048)
    assert (test.camera.res_w, test.camera.res_h) == (2048, 2048)
    with np.load(directory / "test_3dhp_train.npz") as data:
        s, part = data["S"][0, :, :3], data["part"][0, :, :2]
    np.testing.assert_allclose(train.root_3d[0], s[14], atol=1e-6)
    np.testing.assert_allclose(train.poses_3d[0, 10], s[0] - s[14], atol=1e-6)  # Head <- head top
    np.testing.assert_allclose(train.poses_2d[0, 16], normalize_screen_coordinates(part[4], 2048, 2048), atol=1e-6)
    # the 3D projects onto the annotated 2D with the pickled intrinsics (derived joints within 3 px)
    projected = project_to_2d(train.poses_3d + train.root_3d[:, None], train.camera.intrinsic)
    assert np.abs(image_coordinates(projected, 2048, 2048) - image_coordinates(train.poses_2d, 2048, 2048)).max() < 3
    assert dataset.frame_numbers("S4", "Seq2", 0).tolist() == [1033]


def test_mpi_inf_3dhp_groups_and_orders_frames(tmp_path):
    rng = np.random.default_rng(0)
    names = ["S1_Seq1_Cam2_000007.jpg", "S1_Seq1_Cam0_000005.jpg", "S1_Seq1_Cam2_000003.jpg", "S1_Seq2_Cam0_000001.jpg"]
    points = rng.normal(size=(4, 17, 4)) + [0, 0, 5, 0]
    part = rng.uniform(100, 1900, size=(4, 17, 3))
    np.savez(
        tmp_path / "ann.npz", imgname=np.array(names), part=part, S=points, center=part[:, 0, :2], scale=np.ones(4)
    )
    cam = {"f": np.array([[1500.0], [1500.0]]), "c": np.array([[1000.0], [1000.0]]), "w": 2048, "h": 2048}
    with open(tmp_path / "cameras_train.pkl", "wb") as handle:
        pickle.dump({"S1_Seq1_Cam0": cam, "S1_Seq1_Cam2": cam, "S1_Seq2_Cam0": cam}, handle)
    dataset = load_dataset("mpi_inf_3dhp", tmp_path / "ann.npz")
    assert dataset.actions("S1") == ["Seq1", "Seq2"]
    assert [c.id for c in dataset.cameras("S1", "Seq1")] == ["S1_Seq1_Cam0", "S1_Seq1_Cam2"]
    assert dataset.frame_numbers("S1", "Seq1", 1).tolist() == [3, 7]
    np.testing.assert_allclose(dataset.positions_camera("S1", "Seq1", 1)[:, 0], points[[2, 0], 14, :3], rtol=1e-6)
    with pytest.raises(UserError, match="several sequences"):
        dataset.cameras("S1")
    np.savez(tmp_path / "bad.npz", imgname=np.array(["frame_1.jpg"]), part=part[:1], S=points[:1])
    with pytest.raises(UserError, match="bad.npz: imgname 'frame_1.jpg' is neither"):
        load_dataset("mpi_inf_3dhp", tmp_path / "bad.npz")


# --- synthetic and custom (formats written by other modules) ---------------------------------------------------------


def _camera_dicts(subject):
    return [{key: cam[key] for key in CAMERA_KEYS} for cam in h36m_cameras(subject)]


def _synthetic_files(tmp_path, frames_2d=None):
    rng = np.random.default_rng(1)
    positions = {
        s: {"Walk": (rng.normal(scale=0.3, size=(30, 17, 3)) + [0, 0, 1]).astype(np.float32)} for s in ("S1", "S9")
    }
    cameras = {s: _camera_dicts(s) for s in positions}
    _save(tmp_path / "data_3d_synthetic.npz", positions_3d=positions, cameras=cameras)
    dataset = load_dataset("synthetic", tmp_path / "data_3d_synthetic.npz")
    gt, _ = dataset.ground_truth_2d()
    if frames_2d is not None:
        gt = {
            s: {a: [np.concatenate([c, c])[:frames_2d] for c in cams] for a, cams in acts.items()}
            for s, acts in gt.items()
        }
    _save(tmp_path / "data_2d_synthetic_gt.npz", positions_2d=gt, metadata=H36M_META)
    return positions, dataset


def test_synthetic_dataset_round_trip(tmp_path):
    positions, dataset = _synthetic_files(tmp_path, frames_2d=45)  # 2D longer than 3D: trimmed
    assert dataset.subjects() == ["S1", "S9"] and dataset.skeleton == h36m_17()
    keypoints = load_keypoints(tmp_path / "data_2d_synthetic_gt.npz", dataset)
    seq = build_sequences(dataset, keypoints, ["S9"])[3]
    assert len(seq) == 30
    expected = h36m_cameras("S9")[3]
    np.testing.assert_allclose(seq.camera.intrinsic, expected["intrinsic"], atol=1e-6)
    projected = project_to_2d(seq.poses_3d + seq.root_3d[:, None], seq.camera.intrinsic)
    np.testing.assert_allclose(projected, seq.poses_2d, atol=1e-5)


def test_shorter_2d_is_an_error_naming_the_stream(tmp_path):
    _, dataset = _synthetic_files(tmp_path, frames_2d=20)
    with pytest.raises(
        UserError, match=r"data_2d_synthetic_gt\.npz: S1 / Walk / camera 0: 20 2D frames but the 3D has 30"
    ):
        load_keypoints(tmp_path / "data_2d_synthetic_gt.npz", dataset)


def test_custom_dataset(tmp_path):
    rng = np.random.default_rng(2)
    detections = rng.uniform(0, 600, size=(12, 17, 3)).astype(np.float32)
    metadata = {
        "layout_name": "coco",
        "num_joints": 17,
        "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
        "video_metadata": {"dancer.mp4": {"w": 600, "h": 400, "fps": 20}},
    }
    path = _save(
        tmp_path / "data_2d_custom_test.npz", positions_2d={"dancer.mp4": {"custom": [detections]}}, metadata=metadata
    )
    assert default_paths("custom", "test", tmp_path) == (path, path)
    dataset = load_dataset("custom", path)
    assert dataset.subjects() == ["dancer.mp4"] and dataset.fps == 20 and not dataset.has_ground_truth()
    keypoints = load_keypoints(path, dataset)
    (seq,) = build_sequences(dataset, keypoints, ["dancer.mp4"])
    assert seq.poses_3d is None and seq.root_3d is None and len(seq) == 12
    assert (seq.camera.res_w, seq.camera.res_h) == (600, 400)
    np.testing.assert_allclose(seq.poses_2d[:, 14], detections[:, 6, :2] / 300 - [1, 400 / 600], atol=1e-6)
    _save(tmp_path / "nometa.npz", positions_2d={"v": {"custom": [detections]}}, metadata={"layout_name": "coco"})
    with pytest.raises(UserError, match="nometa.npz: metadata lacks video_metadata"):
        load_dataset("custom", tmp_path / "nometa.npz")


# --- bad input -------------------------------------------------------------------------------------------------------


def test_bad_3d_files(tmp_path):
    with pytest.raises(UserError, match="missing.npz: h36m dataset file not found"):
        load_dataset("h36m", tmp_path / "missing.npz")
    with pytest.raises(UserError, match="unknown dataset 'h37m'"):
        load_dataset("h37m", tmp_path)
    np.savez(tmp_path / "keys.npz", poses=np.zeros(3))
    with pytest.raises(UserError, match="keys.npz: Human3.6M 3D file lacks the key\\(s\\) positions_3d"):
        load_dataset("h36m", tmp_path / "keys.npz")
    _save(tmp_path / "shape.npz", positions_3d={"S1": {"Walk": np.zeros((5, 20, 3))}})
    with pytest.raises(UserError, match=r"shape.npz: positions_3d\['S1'\]\['Walk'\]: expected a \(T, 32 or 17, 3\)"):
        load_dataset("h36m", tmp_path / "shape.npz")
    nan = np.zeros((5, 32, 3))
    nan[2, 3, 1] = np.nan
    _save(tmp_path / "nan.npz", positions_3d={"S1": {"Walk": nan}})
    with pytest.raises(UserError, match=r"nan.npz: positions_3d\['S1'\]\['Walk'\]: NaN/inf coordinate .*\(2, 3, 1\)"):
        load_dataset("h36m", tmp_path / "nan.npz")
    _save(tmp_path / "subj.npz", positions_3d={"S42": {"Walk": np.zeros((5, 32, 3))}})
    with pytest.raises(UserError, match="subj.npz: unknown Human3.6M subject 'S42'"):
        load_dataset("h36m", tmp_path / "subj.npz")
    np.savez(tmp_path / "notdict.npz", positions_3d=np.zeros((3, 17, 3)))
    with pytest.raises(UserError, match="notdict.npz: 'positions_3d' must be a pickled dict"):
        load_dataset("h36m", tmp_path / "notdict.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="garbage.npz: not a readable"):
        load_dataset("synthetic", tmp_path / "garbage.npz")
    _save(tmp_path / "cams.npz", positions_3d={"S1": {"W": np.zeros((5, 17, 3))}}, cameras={"S1": [{"id": "x"}]})
    with pytest.raises(UserError, match=r"cams.npz: cameras\['S1'\]\[0\]: camera lacks the key\(s\) res_w"):
        load_dataset("synthetic", tmp_path / "cams.npz")


def test_bad_2d_files(tmp_path):
    _, dataset = _synthetic_files(tmp_path)
    good = np.zeros((30, 17, 2), np.float32)
    wrong_joints = [np.zeros((30, 16, 2))] * 4
    cases = {
        "layout.npz": ({"S1": {"Walk": [good] * 4}}, {"num_joints": 17}, "metadata needs layout_name"),
        "joints.npz": ({"S1": {"Walk": wrong_joints}}, H36M_META, r"S1 / Walk / camera 0: expected a \(T, 17, 2 or"),
        "cams.npz": ({"S1": {"Walk": [good] * 3}}, H36M_META, "S1 / Walk: 3 camera streams but the dataset has 4"),
        "none.npz": ({"S7": {"Walk": [good] * 4}}, H36M_META, r"no \(subject, action\) of this file matches"),
    }  # fmt: skip
    for name, (positions, metadata, message) in cases.items():
        _save(tmp_path / name, positions_2d=positions, metadata=metadata)
        with pytest.raises(UserError, match=f"{name}: .*{message}"):
            load_keypoints(tmp_path / name, dataset)
    nan = good.copy()
    nan[4, 2, 0] = np.nan
    _save(tmp_path / "nan2d.npz", positions_2d={"S1": {"Walk": [good, good, nan, good]}}, metadata=H36M_META)
    with pytest.raises(UserError, match=r"nan2d.npz: S1 / Walk / camera 2: NaN/inf coordinate"):
        load_keypoints(tmp_path / "nan2d.npz", dataset)
    np.savez(tmp_path / "nokeys.npz", keypoints=np.zeros(2))
    with pytest.raises(UserError, match="nokeys.npz: 2D keypoint file lacks the key\\(s\\) positions_2d, metadata"):
        load_keypoints(tmp_path / "nokeys.npz", dataset)
    with pytest.raises(UserError, match="nothere.npz: 2D keypoint file not found"):
        load_keypoints(tmp_path / "nothere.npz", dataset)


def test_user_error_is_one_line_and_exit_2(tmp_path):
    code = (
        "from common.errors import run_cli\n"
        "from common.datasets import load_dataset\n"
        f"run_cli(lambda: load_dataset('h36m', {str(tmp_path / 'nope.npz')!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.npz'}: h36m dataset file not found"]
