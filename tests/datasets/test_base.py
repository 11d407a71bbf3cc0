"""common/datasets/base.py: the plausibility of 3D positions (metres, not millimetres)."""

from __future__ import annotations

import numpy as np
import pytest

from common.core.errors import UserError
from common.datasets.base import check_metres


def test_positions_in_millimetres_are_refused():
    rng = np.random.default_rng(0)
    metres = (rng.normal(scale=0.3, size=(50, 17, 3)) + [0, 0, 5]).astype(np.float32)  # joints ~0.5 m from centre
    check_metres(metres, "m.npz")  # a person in metres far from the origin passes
    with pytest.raises(UserError, match=r"^mm.npz: positions look like millimetres \(joints lie 4\d\d units from"):
        check_metres(metres * 1000, "mm.npz")
