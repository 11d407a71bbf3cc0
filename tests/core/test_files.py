"""common.core.files: npz loading (restricted unpickling, real data files) and atomic writes (failures, kills)."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, ShellPayload, shared_path

from common.core import files
from common.core.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, UserError
from common.core.files import TEMP_NAME, atomic_savez, atomic_write, load_npz, remove_stale_temps


def leftovers(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


# --- load_npz ----------------------------------------------------------------------------------------------------


def test_load_npz_round_trip_of_plain_and_pickled_members(tmp_path):
    positions = {"S1": {"Walk": [np.arange(6, dtype=np.float32).reshape(1, 3, 2)]}}
    metadata = {"layout_name": "coco", "keypoints_symmetry": [[1, 3], [2, 4]], "num_joints": np.int64(17)}
    atomic_savez(tmp_path / "mixed.npz", positions_2d=np.array(positions, dtype=object),
                 metadata=np.array(metadata, dtype=object), scores=np.linspace(0, 1, 5), names=np.array(["a", "bc"]))
    data = load_npz(tmp_path / "mixed.npz", required_keys=("positions_2d", "metadata"))
    assert sorted(data) == ["metadata", "names", "positions_2d", "scores"]
    np.testing.assert_array_equal(data["positions_2d"].item()["S1"]["Walk"][0], positions["S1"]["Walk"][0])
    assert data["metadata"].item() == metadata and type(data["metadata"].item()["num_joints"]) is np.int64
    np.testing.assert_array_equal(data["scores"], np.linspace(0, 1, 5))
    assert data["names"].tolist() == ["a", "bc"]


def test_load_npz_refuses_a_payload_in_an_object_member(tmp_path):
    marker = tmp_path / "MARKER"
    np.savez(tmp_path / "evil.npz", keypoints=np.zeros((2, 17, 3)),
             metadata=np.array({"w": 10, "note": ShellPayload(marker)}, dtype=object))
    with pytest.raises(UserError) as caught:
        load_npz(tmp_path / "evil.npz", ("keypoints",), what="detections file")
    assert str(caught.value).startswith(f"{tmp_path / 'evil.npz'} (metadata): refused to load posix.system")
    assert not marker.exists()
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as data:
        data["metadata"]  # what the loader did before: the payload runs
    assert marker.exists()


def test_load_npz_never_unpickles_a_raw_pickle_named_npz(tmp_path):
    marker = tmp_path / "MARKER"
    (tmp_path / "raw.npz").write_bytes(pickle.dumps({"keypoints": ShellPayload(marker)}))
    with pytest.raises(UserError, match="raw.npz: not a readable 2D keypoint file"):
        load_npz(tmp_path / "raw.npz", what="2D keypoint file")
    assert not marker.exists()


def test_load_npz_errors_name_the_file(tmp_path):
    np.savez(tmp_path / "keys.npz", other=np.zeros(2))
    with pytest.raises(UserError, match=r"keys.npz: 3D file lacks the key\(s\) positions_3d \(has: other\)"):
        load_npz(tmp_path / "keys.npz", ("positions_3d",), what="3D file")
    (tmp_path / "garbage.npz").write_text("not a zip")
    with pytest.raises(UserError, match="garbage.npz: not a readable 3D file"):
        load_npz(tmp_path / "garbage.npz", what="3D file")
    with pytest.raises(UserError, match="nothere.npz: 3D file not found"):
        load_npz(tmp_path / "nothere.npz", what="3D file")
    with pytest.raises(UserError, match="is a directory; expected a 3D file"):
        load_npz(tmp_path, what="3D file")


def test_load_npz_refuses_a_pickled_member_that_is_not_an_array(tmp_path):
    import io
    import zipfile

    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|O", "fortran_order": False, "shape": ()})
    member.write(pickle.dumps({"w": 1}, protocol=4))  # an object-array header, then a bare dict
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as archive:
        archive.writestr("metadata.npy", member.getvalue())
    with pytest.raises(UserError, match=r"odd.npz \(metadata\): expected a pickled numpy array, found dict"):
        load_npz(tmp_path / "odd.npz")


@pytest.mark.parametrize("name, keys", [
    ("h36m/data_3d_h36m.npz", ("positions_3d",)),
    ("h36m/data_2d_h36m_sh_pt_mpii.npz", ("positions_2d", "metadata")),
    ("humaneva/data_3d_humaneva15.npz", ("positions_3d",)),
    ("humaneva/data_2d_humaneva15_gt.npz", ("positions_2d", "metadata")),
    ("mpi_inf_3dhp/test_3dhp_train.npz", ("imgname", "part", "S")),
])
def test_genuine_videopose3d_files_load_through_the_restricted_path(name, keys):
    path = shared_path("data", *name.split("/"))
    data = load_npz(path, keys)
    with np.load(path, allow_pickle=True) as reference:  # trusted here: the shared data set
        assert sorted(data) == sorted(reference.files)
        for key in keys:
            expected, actual = reference[key], data[key]
            assert actual.dtype == expected.dtype and actual.shape == expected.shape
            if expected.dtype != object:
                np.testing.assert_array_equal(actual, expected)
                continue
            expected, actual = expected.item(), actual.item()
            assert list(actual) == list(expected)
            first = next(iter(expected))
            if key == "metadata":
                assert str(actual) == str(expected)
                continue
            for action in expected[first]:  # every action of the first subject, every camera
                np.testing.assert_array_equal(np.asarray(actual[first][action]), np.asarray(expected[first][action]))


# --- atomic_write --------------------------------------------------------------------------------------------------


def test_atomic_write_gives_usual_permissions_and_leaves_nothing_else(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "out.txt", lambda tmp: Path(tmp).write_text("done"))
    finally:
        os.umask(previous)
    assert path.read_text() == "done" and (path.stat().st_mode & 0o777) == 0o640
    assert leftovers(tmp_path) == ["out.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    (tmp_path / "out.txt").write_text("old")

    def broken(tmp):
        Path(tmp).write_text("half")
        raise ValueError("bug in the writer")

    with pytest.raises(ValueError, match="bug in the writer"):
        atomic_write(tmp_path / "out.txt", broken)
    assert leftovers(tmp_path) == ["out.txt"] and (tmp_path / "out.txt").read_text() == "old"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_an_os_error_while_writing_is_one_line_naming_the_path(tmp_path, code):
    def full_disk(tmp):
        Path(tmp).write_bytes(b"x" * 1000)
        raise OSError(code, os.strerror(code))

    with pytest.raises(UserError) as caught:
        atomic_write(tmp_path / "best_epoch.bin", full_disk)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'best_epoch.bin'}: could not write the file ({os.strerror(code)})")
    assert "\n" not in message and ("free some space" in message) == (code == errno.ENOSPC)
    assert leftovers(tmp_path) == []


def test_reserved_temp_names_are_ours_and_keep_the_suffix(tmp_path):
    tmp = files.reserve_temp(tmp_path / "render.mp4")
    name = Path(tmp).name
    assert TEMP_NAME.fullmatch(name) and name.startswith(f".render.mp4.tmp-{os.getpid()}-") and name.endswith(".mp4")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temps_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".a.npz.tmp-{dead_pid()}-abcd_123.npz"
    live = tmp_path / f".b.bin.tmp-{os.getpid()}-zzzzzzzz.bin"
    old = tmp_path / f".c.bin.tmp-{os.getpid()}-yyyyyyyy.bin"
    unrelated = [tmp_path / ".notes.tmp", tmp_path / "data.tmp-1-abcdefgh", tmp_path / ".x.tmp-12-short"]
    for path in [dead, live, old, *unrelated]:
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    atomic_write(tmp_path / "new.txt", lambda tmp: Path(tmp).write_text("x"))
    assert sorted(leftovers(tmp_path)) == sorted([live.name, "new.txt", *(p.name for p in unrelated)])
    assert remove_stale_temps(tmp_path) == []


WRITER = """
import signal, sys, time
from pathlib import Path
from common.core.errors import run_cli
from common.core.files import atomic_write

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if this test runs in the background
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM])  # not blocked by an inherited mask

def writer(tmp):
    Path(tmp).write_bytes(b"x" * 100000)
    print("writing", flush=True)
    time.sleep(600)

run_cli(lambda: atomic_write(sys.argv[1], writer))
"""


def start_writer(target: Path) -> subprocess.Popen:
    """A process inside atomic_write (its temp file written), blocked until a signal ends it."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    return process


def test_a_temp_left_by_sigkill_is_removed_by_the_next_write(tmp_path):
    process = start_writer(tmp_path / "best_epoch.bin")
    process.kill()
    process.communicate(timeout=60)
    (left,) = leftovers(tmp_path)
    assert TEMP_NAME.fullmatch(left) and left.startswith(f".best_epoch.bin.tmp-{process.pid}-")
    atomic_write(tmp_path / "other.txt", lambda tmp: Path(tmp).write_text("x"))
    assert leftovers(tmp_path) == ["other.txt"]


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, EXIT_TERMINATED), (signal.SIGINT, EXIT_INTERRUPTED)])
def test_sigterm_and_sigint_end_cleanly_without_a_temp(tmp_path, signum, exit_code):
    process = start_writer(tmp_path / "best_epoch.bin")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert leftovers(tmp_path) == []
