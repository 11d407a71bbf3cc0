"""Files from strangers stay data: every loader refuses a file that carries code, and the code never runs.

Each crafted file is a genuine file of its kind with a `ShellPayload` (``touch MARKER`` when unpickled) planted in
it. The same file without the payload loads, so the loader really reaches the planted object; with it, the loader
fails with one line naming the file (and the refused ``posix.system``), and ``MARKER`` never appears. The same
payloads through the command lines (run.py, prepare_data_2d_custom.py, video_to_3d.py) are cases of
tests/scripts/test_bad_inputs.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ShellPayload, detections_file, make_tiny_synthetic

from common.core.errors import UserError

REFUSED = "refused to load posix.system"


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return make_tiny_synthetic(tmp_path_factory)


def trusted_npz(path: Path) -> dict:
    """Members of one of our own files (trusted: written by the test), dicts unwrapped."""
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key].item() if data[key].dtype == object else data[key] for key in data.files}


def save_npz(path: Path, members: dict) -> Path:
    np.savez(path, **{key: np.array(value, dtype=object) if isinstance(value, dict) else value
                      for key, value in members.items()})
    return path


def plant(members: dict, member: str, key: str, payload: object | None) -> dict:
    """A copy of `members` with ``members[member][key] = payload`` (nothing planted for None)."""
    planted = dict(members)
    if payload is not None:
        planted[member] = {**members[member], key: payload}
    return planted


def assert_refused(error: UserError, path: Path, marker: Path) -> None:
    message = str(error)
    assert message.startswith(str(path)) and REFUSED in message and "\n" not in message, message
    assert not marker.exists(), "the payload ran"


# --- crafted files -------------------------------------------------------------------------------------------------


def keypoints_2d(directory: Path, synthetic_dir: Path, payload) -> Path:
    members = trusted_npz(synthetic_dir / "data_2d_synthetic_gt.npz")
    return save_npz(directory / "data_2d_evil.npz", plant(members, "metadata", "note", payload))


def synthetic_3d(directory: Path, synthetic_dir: Path, payload) -> Path:
    members = trusted_npz(synthetic_dir / "data_3d_synthetic.npz")
    return save_npz(directory / "data_3d_evil.npz", plant(members, "metadata", "note", payload))


def h36m_3d(directory: Path, synthetic_dir: Path, payload) -> Path:
    """Human3.6M layout (17 joints, subjects S1/S9), the payload as one more action of S1."""
    positions = trusted_npz(synthetic_dir / "data_3d_synthetic.npz")["positions_3d"]
    members = {"positions_3d": {subject: dict(actions) for subject, actions in positions.items()}}
    if payload is not None:
        members["positions_3d"]["S1"]["Evil"] = payload
    return save_npz(directory / "data_3d_h36m.npz", members)


def mpi_inf_3dhp(directory: Path, payload) -> Path:
    """An mmpose-style 3DHP annotation file and its cameras_train.pkl (the payload inside the camera entry)."""
    import pickle

    rng = np.random.default_rng(0)
    names = np.array([f"S1_Seq1_Cam0_{frame:06d}.jpg" for frame in range(1, 41)])
    points = np.concatenate([rng.uniform(-0.5, 0.5, (40, 17, 2)), rng.uniform(3, 4, (40, 17, 1))], axis=-1)
    part = np.concatenate([1024 + 1500 * points[..., :2] / points[..., 2:], np.ones((40, 17, 1))], axis=-1)
    np.savez(directory / "train.npz", imgname=names, part=part, S=np.concatenate([points, np.ones((40, 17, 1))], -1))
    camera = {"f": np.array([[1500.0], [1500.0]]), "c": np.array([[1024.0], [1024.0]]), "w": 2048, "h": 2048}
    if payload is not None:
        camera["name"] = payload
    with open(directory / "cameras_train.pkl", "wb") as handle:
        pickle.dump({"S1_Seq1_Cam0": camera}, handle)
    return directory / "cameras_train.pkl"


def project_checkpoint(directory: Path, payload) -> Path:
    state = {"epoch": 1, "lr": 1e-3, "model_pos": {"head.weight": torch.ones(3, 4)}, "model_config": {"depth": 1},
             "history": {"note": payload} if payload is not None else {}}
    torch.save(state, directory / "best_epoch.bin")
    return directory / "best_epoch.bin"


def official_checkpoint(directory: Path, payload, where: str = "random_state") -> Path:
    """The official MixSTE layout: epoch, lr, a pickled numpy RandomState, optimizer, ``module.``-prefixed weights."""
    state = {"epoch": 80, "lr": 4e-5, "random_state": np.random.RandomState(1234),
             "optimizer": {"state": {}, "param_groups": [{"lr": 4e-5, "params": [0]}]},
             "model_pos": {"module.head.1.weight": torch.ones(3, 4)}}
    if payload is not None:
        state[where] = payload
    torch.save(state, directory / "mixste_official.bin")
    return directory / "mixste_official.bin"


# --- in-process loaders --------------------------------------------------------------------------------------------


def load_2d(directory, synthetic_dir, payload):
    from common.datasets.keypoints import load_keypoints
    from common.datasets.registry import load_dataset

    path = keypoints_2d(directory, synthetic_dir, payload)
    return path, lambda: load_keypoints(path, load_dataset("synthetic", synthetic_dir / "data_3d_synthetic.npz"))


def load_synthetic(directory, synthetic_dir, payload):
    from common.datasets.registry import load_dataset

    path = synthetic_3d(directory, synthetic_dir, payload)
    return path, lambda: load_dataset("synthetic", path)


def load_h36m(directory, synthetic_dir, payload):
    from common.datasets.registry import load_dataset

    path = h36m_3d(directory, synthetic_dir, payload)
    return path, lambda: load_dataset("h36m", path)


def load_detections(directory, synthetic_dir, payload):
    from common.datasets.detections import read_detections

    path = detections_file(directory / "detections", payload)
    return path, lambda: read_detections(path)


def load_3dhp(directory, synthetic_dir, payload):
    from common.datasets.registry import load_dataset

    path = mpi_inf_3dhp(directory, payload)
    return path, lambda: load_dataset("mpi_inf_3dhp", directory / "train.npz")


LOADERS = {"2d keypoints": load_2d, "synthetic 3d": load_synthetic, "h36m 3d": load_h36m,
           "detections": load_detections, "3dhp cameras": load_3dhp}


@pytest.mark.parametrize("kind", LOADERS)
def test_data_loaders_read_the_clean_file_and_refuse_the_payload(tmp_path, synthetic_dir, kind):
    marker = tmp_path / "MARKER"
    clean_dir, evil_dir = tmp_path / "clean", tmp_path / "evil"
    clean_dir.mkdir()
    evil_dir.mkdir()
    _, load_clean = LOADERS[kind](clean_dir, synthetic_dir, None)
    assert load_clean() is not None
    path, load_evil = LOADERS[kind](evil_dir, synthetic_dir, ShellPayload(marker))
    with pytest.raises(UserError) as caught:
        load_evil()
    assert_refused(caught.value, path, marker)


def test_3dhp_cameras_of_the_clean_pickle_are_used(tmp_path):
    from common.datasets.registry import load_dataset

    mpi_inf_3dhp(tmp_path, None)
    dataset = load_dataset("mpi_inf_3dhp", tmp_path / "train.npz")
    (camera,) = dataset.cameras("S1", "Seq1")
    assert (camera.res_w, camera.res_h) == (2048, 2048)


@pytest.mark.parametrize("kind", ["project", "official random_state", "official optimizer"])
def test_checkpoint_loader_refuses_a_payload(tmp_path, kind):
    from common.model.checkpoints import load_checkpoint

    marker = tmp_path / "MARKER"
    (tmp_path / "clean").mkdir()
    if kind == "project":
        clean, evil = project_checkpoint(tmp_path / "clean", None), project_checkpoint(tmp_path, ShellPayload(marker))
    else:
        where = kind.split()[1]
        clean = official_checkpoint(tmp_path / "clean", None, where)
        evil = official_checkpoint(tmp_path, ShellPayload(marker), where)
    torch.testing.assert_close(next(iter(load_checkpoint(clean)["model_pos"].values())), torch.ones(3, 4))
    with pytest.raises(UserError) as caught:
        load_checkpoint(evil)
    message = str(caught.value)
    assert message.startswith(str(evil)) and "\n" not in message
    assert not marker.exists(), "the payload ran"
    torch.load(evil, weights_only=False)  # the payload is real: an unrestricted load runs it
    assert marker.exists()
