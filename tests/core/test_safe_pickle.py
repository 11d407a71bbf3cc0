"""The restricted unpickler: plain data round-trips under every protocol; anything else is refused, nothing runs."""

from __future__ import annotations

import collections
import io
import pickle
import re

import numpy as np
import pytest
from conftest import EvalPayload, ShellPayload, shared_path

from common.core.errors import UserError
from common.core.safe_pickle import load_pickle, unpickle_data

PLAIN = {
    "positions": {"S1": {"Walking 1": [np.arange(12, dtype=np.float32).reshape(2, 3, 2), np.zeros((0, 17, 2))]}},
    "symmetry": [[1, 2, 3], [4, 5, 6]],
    "layout": ("coco", 17),
    "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), 2.5, 7, True, None, 1 + 2j],
    "text": ["Walk", b"\x00\xff raw", bytearray(b"ab")],
    "sets": [{1, 2}, frozenset({"a"})],
    "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    "slice": slice(1, 9, 2),
    "strings": np.array(["S4_Seq2_Cam0_001033.jpg", "TS1_002001.jpg"]),
    "objects": np.array([np.ones(2), "x", 3], dtype=object),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
}


def assert_same(actual, expected) -> None:
    """Deep equality with type checks (numpy arrays compared by dtype, shape and values)."""
    assert type(actual) is type(expected), (type(actual), type(expected))
    if isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        if expected.dtype == object:
            for a, e in zip(actual.ravel(), expected.ravel()):
                assert_same(a, e)
        else:
            np.testing.assert_array_equal(actual, expected)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    else:
        assert actual == expected


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips(protocol):
    loaded = unpickle_data(io.BytesIO(pickle.dumps(PLAIN, protocol=protocol)), "plain.pkl")
    assert_same(loaded, PLAIN)


@pytest.mark.parametrize("payload_type, refused", [(ShellPayload, r"posix\.system"),
                                                    (EvalPayload, r"(__builtin__|builtins)\.eval")])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_payload_is_refused_and_never_runs(tmp_path, payload_type, refused, protocol):
    marker = tmp_path / "MARKER"
    data = pickle.dumps({"cameras": [np.zeros(3), payload_type(marker)]}, protocol=protocol)
    with pytest.raises(UserError) as caught:
        unpickle_data(io.BytesIO(data), "evil.pkl")
    message = str(caught.value)
    assert re.match(f"evil.pkl: refused to load {refused}: ", message) and "\n" not in message
    assert not marker.exists()
    pickle.loads(data)  # the payload is real: the plain unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("global_name", [b"builtins\ngetattr", b"numpy\nload", b"subprocess\nPopen", b"pathlib\nPath",
                                         b"numpy.random._pickle\n__randomstate_ctor", b"copyreg\n_reconstructor"])
def test_every_other_global_is_refused(global_name):
    data = b"c" + global_name + b"\n."  # protocol 0 GLOBAL opcode, then STOP
    with pytest.raises(UserError, match="x.pkl: refused to load " + global_name.decode().replace("\n", r"\.")):
        unpickle_data(io.BytesIO(data), "x.pkl")


def test_persistent_references_are_refused():
    class WithPersistentId(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage-0" if isinstance(obj, str) else None

    buffer = io.BytesIO()
    WithPersistentId(buffer, protocol=2).dump(["x"])
    with pytest.raises(UserError, match="p.pkl: refused to load a persistent object reference"):
        unpickle_data(io.BytesIO(buffer.getvalue()), "p.pkl")


def test_damaged_pickles_are_one_line_errors(tmp_path):
    whole = pickle.dumps({"f": np.ones(4)}, protocol=4)
    (tmp_path / "cut.pkl").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.pkl").write_text("cameras: none\n")
    for name in ("cut.pkl", "text.pkl"):
        with pytest.raises(UserError, match=f"{name}: not a readable camera pickle") as caught:
            load_pickle(tmp_path / name, what="camera pickle")
        assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match="nothere.pkl: camera pickle not found"):
        load_pickle(tmp_path / "nothere.pkl", what="camera pickle")
    with pytest.raises(UserError, match="is a directory; expected a camera pickle"):
        load_pickle(tmp_path, what="camera pickle")


@pytest.mark.parametrize("name", ["mpi_inf_3dhp/cameras_train.pkl", "mpi_inf_3dhp/cameras_test.pkl",
                                  "h36m/mmpose/cameras.pkl"])
def test_genuine_camera_pickles_load_as_with_pickle(name):
    path = shared_path("data", *name.split("/"))
    with open(path, "rb") as handle:
        expected = pickle.load(handle)  # trusted here: the shared data set
    assert_same(load_pickle(path), expected)
