"""common/datasets/h5_archives.py: the same h5 members found and read from a directory, a zip and a tar.gz."""

from __future__ import annotations

import tarfile
import zipfile

import h5py
import numpy as np
import pytest

from common.core.errors import UserError
from common.datasets.h5_archives import H5Source


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    arrays = {}
    for subject, stem in (("S1", "Walking"), ("S1", "Directions 1"), ("S9", "Walking")):
        folder = root / "h36m" / subject / "MyPoses" / "3D_positions"
        folder.mkdir(parents=True, exist_ok=True)
        arrays[(subject, stem)] = np.random.default_rng(len(arrays)).normal(size=(96, 5))
        with h5py.File(folder / f"{stem}.h5", "w") as handle:
            handle["3D_positions"] = arrays[(subject, stem)]
    (root / "h36m" / "S1" / "notes.txt").write_text("not an h5 file")
    return root, arrays


def _archives(root, tmp_path):
    members = [p for p in root.rglob("*") if p.is_file()]
    with zipfile.ZipFile(tmp_path / "tree.zip", "w") as archive:
        for path in members:
            archive.write(path, path.relative_to(root).as_posix())
    with tarfile.open(tmp_path / "tree.tar.gz", "w:gz") as archive:
        for path in members:
            archive.add(path, path.relative_to(root).as_posix())
    return [root, tmp_path / "tree.zip", tmp_path / "tree.tar.gz"]


def test_find_and_read_from_every_container(tree, tmp_path):
    root, arrays = tree
    for path in _archives(root, tmp_path):
        with H5Source(path, "--from-archive") as source:
            found = source.find("MyPoses/3D_positions")
            expected_stems = {"S1": ["Directions 1", "Walking"], "S9": ["Walking"]}
            assert {s: sorted(stems) for s, stems in found.items()} == expected_stems
            for (subject, stem), expected in arrays.items():
                np.testing.assert_array_equal(source.read(found[subject][stem], "3D_positions"), expected)
            with pytest.raises(UserError, match="has no dataset 'poses'"):
                source.read(found["S9"]["Walking"], "poses")
            assert source.find("StackedHourglass") == {}


def test_not_an_archive_is_a_user_error(tmp_path):
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(UserError, match="--from-archive .*plain.txt: expected a directory, a .zip or a .tar"):
        H5Source(tmp_path / "plain.txt", "--from-archive")
