"""Action and subject naming: action groups, Human3.6M's canonical action names, its dropped corrupted take, the
per-subject report of missing/extra actions and the natural subject order (``S2`` before ``S11``).

`action_group` serves every dataset with VideoPose3D action names (Human3.6M ``Walking 1``, HumanEva
``Walking 1 chunk0``); the rest is Human3.6M's protocol, used by the preparation scripts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from common.geometry.h36m_cameras import H36M_CAMERA_IDS

H36M_ACTION_GROUPS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "WalkTogether", "Walking",
)  # fmt: skip
"""The 15 Human3.6M action groups (canonical names); every group has two takes per subject."""

H36M_ACTION_RENAMES = (("TakingPhoto", "Photo"), ("WalkingDog", "WalkDog"))
"""Source spellings that VideoPose3D renames to the canonical action names."""

H36M_CORRUPTED = (("S11", "Directions"),)
"""(subject, action) pairs that are dropped: the S11 ``Directions`` video is corrupted."""


def canonical_h36m_action(name: str) -> str:
    """Canonical action name: ``TakingPhoto 1`` -> ``Photo 1``, ``WalkingDog`` -> ``WalkDog``, others unchanged."""
    for source, target in H36M_ACTION_RENAMES:
        name = name.replace(source, target)
    return name


def is_corrupted_h36m(subject: str, action: str) -> bool:
    """True for the (subject, action) pairs dropped from every Human3.6M output."""
    return (subject, action) in H36M_CORRUPTED


def action_group(action: str) -> str:
    """The action group of a take name, the part before the first space: ``Walking 1`` -> ``Walking``,
    ``SittingDown`` -> ``SittingDown``, HumanEva ``Walking 1 chunk0`` -> ``Walking``."""
    return action.split(" ")[0]


def h36m_action_report(subject: str, actions: Iterable[str]) -> list[str]:
    """Human-readable notes on a subject's actions compared to the Human3.6M protocol (2 takes of 15 groups).

    Returns one line per problem (missing groups, groups with a number of takes other than 2, unknown names); an
    empty list when the subject is complete. The caller prints them: the scripts report instead of asserting.
    """
    counts: dict[str, int] = {}
    unknown = []
    for action in actions:
        group = action_group(action)
        if group in H36M_ACTION_GROUPS:
            counts[group] = counts.get(group, 0) + 1
        else:
            unknown.append(action)
    notes = []
    missing = [g for g in H36M_ACTION_GROUPS if g not in counts]
    if missing:
        notes.append(f"{subject}: missing action groups: {', '.join(missing)}")
    odd = [f"{g} ({n} takes)" for g, n in sorted(counts.items()) if n != _expected_takes(subject, g)]
    if odd:
        notes.append(f"{subject}: unexpected number of takes (expected 2): {', '.join(odd)}")
    if unknown:
        notes.append(f"{subject}: extra actions not in the 15 Human3.6M groups: {', '.join(sorted(unknown))}")
    return notes


def _expected_takes(subject: str, group: str) -> int:
    """Number of takes a complete subject has for a group (one less where a corrupted take is dropped)."""
    return 1 if (subject, group) in H36M_CORRUPTED else 2



def subject_sort_key(subject: str) -> tuple:
    """Sort ``S2`` before ``S11`` (numeric part compared as a number)."""
    digits = "".join(ch for ch in subject if ch.isdigit())
    return (subject.rstrip("0123456789"), int(digits) if digits else -1, subject)


def complete_actions(views: dict[str, dict[str, list[np.ndarray | None]]]) -> dict[str, dict[str, list[np.ndarray]]]:
    """Keep the actions detected in all 4 cameras (others are reported and dropped); subjects in natural order."""
    output: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in sorted(views, key=subject_sort_key):
        output[subject] = {}
        for action, slots in sorted(views[subject].items()):
            missing = [H36M_CAMERA_IDS[i] for i, view in enumerate(slots) if view is None]
            if missing:
                print(f"{subject} {action}: no detections for camera(s) {', '.join(missing)}, action dropped")
                continue
            output[subject][action] = slots
        for note in h36m_action_report(subject, output[subject]):
            print(note)
    return output
