"""common/datasets/preparation_cli.py: name lists and the refusal to overwrite outputs."""

from __future__ import annotations

import pytest

from common.core.errors import UserError
from common.datasets.preparation_cli import output_paths, parse_name_list


def test_parse_name_list_keeps_order_and_rejects_bad_names():
    assert parse_name_list(" S9, S1 ,", "--subjects", ("S1", "S9")) == ["S9", "S1"]
    for value in ("S1,S1", "S1,S2", "", " , "):
        with pytest.raises(UserError, match="--subjects: expected distinct comma-separated names from S1,S9"):
            parse_name_list(value, "--subjects", ("S1", "S9"))


def test_output_paths_refuse_existing_files_unless_overwriting(tmp_path):
    assert output_paths(tmp_path, ["a.npz", "b.npz"], overwrite=False) == [tmp_path / "a.npz", tmp_path / "b.npz"]
    (tmp_path / "b.npz").write_bytes(b"old")
    with pytest.raises(UserError, match=r"b\.npz: already exists \(pass --overwrite"):
        output_paths(tmp_path, ["a.npz", "b.npz"], overwrite=False)
    assert output_paths(tmp_path, ["b.npz"], overwrite=True) == [tmp_path / "b.npz"]
    assert (tmp_path / "b.npz").read_bytes() == b"old"  # checking writes nothing
    with pytest.raises(UserError, match="--output-dir .*missing: directory does not exist"):
        output_paths(tmp_path / "missing", ["a.npz"], overwrite=True)
