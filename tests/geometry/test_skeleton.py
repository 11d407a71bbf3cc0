"""Tests for common/geometry/skeleton.py: joint trees, removal with re-parenting, dataset skeletons, mirroring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.geometry.skeleton import (
    H36M_17_KEPT,
    H36M_17_LEFT,
    H36M_17_NAMES,
    H36M_17_PARENTS,
    H36M_17_RIGHT,
    Skeleton,
    flip_poses,
    h36m_17,
    h36m_32,
    humaneva15,
    mirror_permutation,
    mpi_inf_3dhp_17,
)


def _is_tree(skeleton: Skeleton) -> bool:
    """Every joint reaches a root (-1) without cycles."""
    parents = skeleton.parents()
    for joint in range(skeleton.num_joints()):
        seen = set()
        while joint != -1:
            if joint in seen:
                return False
            seen.add(joint)
            joint = parents[joint]
    return True


def test_h36m_17_matches_the_published_reduction():
    skeleton = h36m_17()
    assert skeleton.num_joints() == 17
    assert skeleton.parents().tolist() == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
    assert skeleton.joints_left() == [4, 5, 6, 11, 12, 13]
    assert skeleton.joints_right() == [1, 2, 3, 14, 15, 16]
    assert H36M_17_KEPT == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
    assert skeleton.joint_names()[0] == "Hip" and skeleton.joint_names()[8] == "Thorax"
    assert skeleton.joint_names()[13] == "LWrist" and skeleton.joint_names()[16] == "RWrist"
    assert H36M_17_PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert (H36M_17_LEFT, H36M_17_RIGHT) == ((4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16))
    assert H36M_17_NAMES[9] == "Neck/Nose" and len(H36M_17_NAMES) == 17


def test_h36m_32_removal_reparents_to_nearest_kept_ancestor():
    full = h36m_32()
    assert full.num_joints() == 32
    assert len(full.joints_left()) == len(full.joints_right()) == 13
    removed = [j for j in range(32) if j not in H36M_17_KEPT]
    reduced, kept = full.remove_joints(removed)
    assert kept == list(H36M_17_KEPT)
    # Plain removal: the shoulders (original 17, 25) hang from the removed anchors 16/24, whose parent is 12 -> new 7.
    assert reduced.parents()[11] == 7 and reduced.parents()[14] == 7
    # Every other parent equals the published one.
    published = h36m_17().parents()
    mask = np.ones(17, bool)
    mask[[11, 14]] = False
    np.testing.assert_array_equal(reduced.parents()[mask], published[mask])
    # `keep=` gives the same result and the receiver is not mutated.
    again, kept_again = full.remove_joints(keep=H36M_17_KEPT)
    assert again == reduced and kept_again == kept
    assert full.num_joints() == 32 and full.parents()[17] == 16


def test_remove_joints_on_a_chain_and_side_lists():
    # 0 <- 1 <- 2 <- 3 and 0 <- 4 <- 5; left = [2, 3], right = [4, 5]
    skeleton = Skeleton([-1, 0, 1, 2, 0, 4], joints_left=[2, 3], joints_right=[4, 5], joint_names=list("abcdef"))
    reduced, kept = skeleton.remove_joints([1, 2])
    assert kept == [0, 3, 4, 5]
    assert reduced.parents().tolist() == [-1, 0, 0, 2]
    # joint 2 (left) was removed, so its pair (2, 4) is dropped; (3, 5) survives as new (1, 3).
    assert reduced.joints_left() == [1] and reduced.joints_right() == [3]
    assert reduced.joint_names() == ["a", "d", "e", "f"]
    with pytest.raises(ValueError):
        skeleton.remove_joints()
    with pytest.raises(ValueError):
        skeleton.remove_joints([1], keep=[0])


def test_children_and_bones():
    skeleton = h36m_17()
    children = skeleton.children()
    assert children[0] == [1, 4, 7]
    assert children[8] == [9, 11, 14]
    assert children[3] == [] and children[16] == []
    bones = skeleton.bones()
    assert len(bones) == 16 and (11, 8) in bones and (16, 15) in bones


def test_mirror_permutation_and_flip_poses():
    perm = mirror_permutation(17, H36M_17_LEFT, H36M_17_RIGHT)
    assert perm[4] == 1 and perm[1] == 4 and perm[13] == 16 and perm[0] == 0 and perm[8] == 8
    np.testing.assert_array_equal(perm[perm], np.arange(17))
    poses = np.random.default_rng(0).normal(size=(2, 5, 17, 3)).astype(np.float32)
    flipped = flip_poses(poses, H36M_17_LEFT, H36M_17_RIGHT)
    np.testing.assert_array_equal(flipped[..., 4, :], poses[..., 1, :] * [-1, 1, 1])  # LHip <- mirrored RHip
    np.testing.assert_array_equal(flipped[..., 0, :], poses[..., 0, :] * [-1, 1, 1])
    np.testing.assert_array_equal(flip_poses(flipped, H36M_17_LEFT, H36M_17_RIGHT), poses)
    as_tensor = flip_poses(torch.from_numpy(poses), H36M_17_LEFT, H36M_17_RIGHT)
    np.testing.assert_array_equal(as_tensor.numpy(), flipped)
    assert poses[0, 0, 0, 0] != flipped[0, 0, 0, 0]  # the input is not modified in place


@pytest.mark.parametrize(
    "factory, num, root",
    [(h36m_32, 32, 0), (h36m_17, 17, 0), (humaneva15, 15, 0), (mpi_inf_3dhp_17, 17, 14)],
)
def test_dataset_skeletons_are_consistent_trees(factory, num, root):
    skeleton = factory()
    assert skeleton.num_joints() == num
    assert _is_tree(skeleton)
    assert skeleton.parents().tolist().count(-1) == 1 and skeleton.parents()[root] == -1
    assert len(skeleton.joint_names()) == num
    names = skeleton.joint_names()
    # Every left/right pair names mirrored joints.
    for left, right in zip(skeleton.joints_left(), skeleton.joints_right()):
        assert names[left].startswith("L") and names[right].startswith("R"), (names[left], names[right])
        assert names[left][1:] == names[right][1:]


def test_humaneva_and_3dhp_layouts():
    he = humaneva15()
    assert he.parents().tolist() == [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1]
    assert he.joints_left() == [2, 3, 4, 8, 9, 10] and he.joints_right() == [5, 6, 7, 11, 12, 13]
    mpi = mpi_inf_3dhp_17()
    names = mpi.joint_names()
    assert names[0] == "HeadTop" and names[14] == "Root" and names[15] == "Spine" and names[16] == "Head"
    assert names[mpi.parents()[0]] == "Head" and names[mpi.parents()[1]] == "Spine"
    assert names[mpi.parents()[8]] == "Root" and names[mpi.parents()[2]] == "Neck"


def test_invalid_skeletons_are_rejected():
    with pytest.raises(ValueError):
        Skeleton([-1, 0], joints_left=[1], joints_right=[])
    with pytest.raises(ValueError):
        Skeleton([-1, 5], joints_left=[], joints_right=[])
    with pytest.raises(ValueError):
        Skeleton([-1, 0], joints_left=[], joints_right=[], joint_names=["a"])
