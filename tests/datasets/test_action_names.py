"""common/datasets/action_names.py: action groups, Human3.6M canonical names and the per-subject action report."""

from __future__ import annotations

from common.datasets.action_names import (
    H36M_ACTION_GROUPS,
    action_group,
    canonical_h36m_action,
    h36m_action_report,
    is_corrupted_h36m,
    subject_sort_key,
)


def test_names_groups_and_subject_order():
    assert action_group("Walking 1") == "Walking" and action_group("SittingDown") == "SittingDown"
    assert action_group("Walking 1 chunk0") == "Walking"  # HumanEva
    assert canonical_h36m_action("TakingPhoto 1") == "Photo 1" and canonical_h36m_action("WalkingDog") == "WalkDog"
    assert is_corrupted_h36m("S11", "Directions") and not is_corrupted_h36m("S11", "Directions 1")
    assert sorted(["S11", "S2", "S9", "S1"], key=subject_sort_key) == ["S1", "S2", "S9", "S11"]


def test_action_report():
    complete = [f"{g}{suffix}" for g in H36M_ACTION_GROUPS for suffix in ("", " 1")]
    assert h36m_action_report("S1", complete) == []
    s11 = [a for a in complete if a != "Directions"]
    assert h36m_action_report("S11", s11) == []
    notes = h36m_action_report("S9", [a for a in complete if a != "Discussion 1"] + ["Dancing"])
    assert notes == [
        "S9: unexpected number of takes (expected 2): Discussion (1 takes)",
        "S9: extra actions not in the 15 Human3.6M groups: Dancing",
    ]
