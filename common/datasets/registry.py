"""Dataset names -> loader classes (the one list of supported datasets), `load_dataset` and the default file names.

    dataset = load_dataset("h36m", "data/data_3d_h36m.npz")
    path_3d, path_2d = default_paths("h36m", "cpn_ft_h36m_dbb")
"""

from __future__ import annotations

from pathlib import Path

from common.core.errors import UserError
from common.datasets.base import MocapDataset
from common.datasets.custom import CustomDataset
from common.datasets.h36m import Human36mDataset
from common.datasets.humaneva import HumanEvaDataset
from common.datasets.mpi_inf_3dhp import MpiInf3dhpDataset
from common.datasets.synthetic import SyntheticDataset

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / "data"
"""Where the preparation scripts write and `run.py` reads by default (``<repo>/data``, git-ignored)."""

DATASETS: dict[str, type[MocapDataset]] = {
    cls.name: cls for cls in (Human36mDataset, HumanEvaDataset, MpiInf3dhpDataset, SyntheticDataset, CustomDataset)
}
DATASET_NAMES = tuple(DATASETS)
"""``("h36m", "humaneva15", "mpi_inf_3dhp", "synthetic", "custom")``."""


def load_dataset(name: str, path: str | Path) -> MocapDataset:
    """Load dataset `name` (one of `DATASET_NAMES`) from `path`.

    `path` is the 3D file (``data_3d_<name>.npz``); for ``custom`` the 2D file; for ``mpi_inf_3dhp`` an mmpose
    annotation npz or a directory of them (with ``cameras_train.pkl`` / ``cameras_test.pkl`` beside).
    """
    if name not in DATASETS:
        raise UserError(f"-d/--dataset: unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {name} dataset file not found")
    return DATASETS[name](path)


def default_paths(name: str, keypoints: str, data_dir: str | Path = DEFAULT_DATA_DIR) -> tuple[Path, Path | None]:
    """VideoPose3D file naming: ``(data_3d_<name>.npz, data_2d_<name>_<keypoints>.npz)`` under `data_dir`.

    ``custom`` uses the 2D file for both; ``mpi_inf_3dhp`` uses `data_dir` itself (mmpose annotations) and, for
    ``keypoints == "gt"``, None as keypoint path (the annotations' own 2D).
    """
    data_dir = Path(data_dir)
    keypoints_path = data_dir / f"data_2d_{name}_{keypoints}.npz"
    if name == "custom":
        return keypoints_path, keypoints_path
    if name == "mpi_inf_3dhp":
        return data_dir, None if keypoints == "gt" else keypoints_path
    return data_dir / f"data_3d_{name}.npz", keypoints_path
