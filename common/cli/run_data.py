"""The data of one `run.py` run: which files ``-d``/``-k``/``--data-dir`` name, and the train/validation/test sequences.

- `data_files(args)`: the 3D and 2D files (VideoPose3D naming, or ``--data-3d`` / ``--data-2d``);
- `load_run_data(args, log)`: load them (generating the synthetic dataset when absent) and build the sequences; a
  protocol evaluation whose test subjects have 3D without 2D is an error listing the missing sequences, unless ``-a``
  selects the actions to evaluate (the skipped ones are then listed);
- `check_frames(num_frames, sequences, flag)`: ``-f`` must fit into at least one sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.cli.run_arguments import split_list
from common.core.errors import UserError
from common.datasets.keypoints import load_keypoints
from common.datasets.registry import default_paths, load_dataset
from common.datasets.sequences import build_sequences
from common.evaluation.protocols import protocol_for

PROJECTED_GT = "gt_projected"
SYNTHETIC_KEYPOINTS = ("gt", "noisy")
DATA_HINTS = {
    "h36m": "create it with data/prepare_data_h36m.py (3D and -k gt) or data/prepare_data_2d_h36m_sh.py / "
            "data/prepare_data_2d_h36m_generic.py (detections), see data/README.md; or point --data-dir to its folder",
    "humaneva15": "put VideoPose3D's data_3d_humaneva15.npz / data_2d_humaneva15_gt.npz into data/ or point --data-dir "
                  "to their folder (see data/README.md, HumanEva-I)",
    "mpi_inf_3dhp": "convert the release with mmpose's preprocess_mpi_inf_3dhp.py and point --data-dir to the folder "
                    "holding its npz and cameras_*.pkl files (see data/README.md, MPI-INF-3DHP)",
    "custom": "create it with data/prepare_data_2d_custom.py from the detections of inference/infer_video.py "
              "(see data/README.md)",
    "synthetic": "create it with data/prepare_data_synthetic.py (run.py does so when the files are absent)",
}


@dataclass
class RunData:
    """Everything the run needs from the data files."""

    dataset: object
    keypoints: object
    protocol: str
    train: list
    val: list
    test: list
    test_subjects: list[str]
    val_subjects: list[str]


def data_files(args) -> tuple[Path, Path | None]:
    """The 3D and 2D files of ``-d``/``-k``/``--data-dir`` (VideoPose3D naming), or --data-3d / --data-2d.

    ``-k gt_projected`` needs no 2D file: the 2D ground truth is the projection of the 3D through the cameras (what
    data/prepare_data_h36m.py writes as ``data_2d_h36m_gt.npz``); the 2D path is then None.
    """
    path_3d, path_2d = default_paths(args.dataset, args.keypoints, args.data_dir)
    if args.keypoints == PROJECTED_GT:
        path_2d = None
    if args.data_3d:
        path_3d = Path(args.data_3d)
    if args.data_2d:
        path_2d = Path(args.data_2d)
    return path_3d, path_2d


def ensure_synthetic_data(path_3d: Path, path_2d: Path | None, keypoints: str, log: Callable,
                          generate: Callable[[Path], None] | None) -> None:
    """Generate the synthetic dataset with ``generate(folder)`` (run.py: data/prepare_data_synthetic.py) when its
    files are absent; without ``generate`` a missing file is reported as usual."""
    generated_2d = path_2d is None or keypoints in SYNTHETIC_KEYPOINTS
    if path_3d.is_file() and (path_2d is None or path_2d.is_file()):
        return
    if path_3d.is_file() and not generated_2d:
        raise UserError(f"{path_2d}: 2D keypoints file not found; the synthetic dataset has -k "
                        f"{' or -k '.join(SYNTHETIC_KEYPOINTS)} (or -k {PROJECTED_GT})")
    if generate is None:
        return
    missing = path_3d if not path_3d.is_file() else path_2d
    log(f"{missing}: not found; generating the synthetic dataset into {path_3d.parent} "
        "(data/prepare_data_synthetic.py)")
    path_3d.parent.mkdir(parents=True, exist_ok=True)
    generate(path_3d.parent)


def _check_files_exist(args, path_3d: Path, path_2d: Path | None) -> None:
    hint = DATA_HINTS[args.dataset]
    if path_2d is not None and not path_2d.is_file():
        extra = f" (or use -k {PROJECTED_GT} to project the 3D ground truth)" if args.keypoints == "gt" else ""
        raise UserError(f"{path_2d}: 2D keypoints file not found; {hint}{extra}")
    if not path_3d.exists():
        raise UserError(f"{path_3d}: 3D dataset file not found; {hint}")


def missing_sequences(dataset, keypoints, subjects: list[str], actions: list[str] | None) -> list[str]:
    """'subject / action / camera N' of every 3D sequence (of ``actions``, prefix match) that has no 2D keypoints."""
    missing = []
    for subject in subjects:
        if not dataset.has_subject(subject) or subject not in keypoints.positions:
            continue  # build_sequences names an unavailable subject
        for action in dataset.actions(subject):
            if actions is not None and not any(action.startswith(wanted) for wanted in actions):
                continue
            streams = keypoints.positions[subject].get(action) or []
            for index in range(len(dataset.cameras(subject, action))):
                if index >= len(streams) or streams[index] is None:
                    missing.append(f"{subject} / {action} / camera {index}")
    return missing


def check_test_set_complete(data: RunData, actions: list[str] | None, log: Callable) -> None:
    """A protocol evaluation must not drop test sequences silently: with every action (no ``-a``) a 3D sequence
    without 2D is an error; with ``-a`` the skipped ones are listed."""
    if data.protocol == "none" or not data.dataset.has_ground_truth():
        return
    missing = missing_sequences(data.dataset, data.keypoints, data.test_subjects, actions)
    if not missing:
        return
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    if actions is None:
        raise UserError(f"{data.keypoints.path}: {len(missing)} test sequence(s) have 3D but no 2D keypoints: {shown}; "
                        "the protocol needs all of them (select the actions to evaluate with -a to go without them)")
    log(f"note: {len(missing)} test sequence(s) of the -a selection have no 2D keypoints and are skipped: {shown}")


def load_run_data(args, log: Callable, generate_synthetic: Callable[[Path], None] | None = None) -> RunData:
    """Load the dataset and keypoints and select the training / validation / test sequences.

    With ``--render`` only the sequences of ``--viz-subject`` / ``--viz-action`` are built (the test set of the run).
    ``generate_synthetic(folder)`` writes the synthetic dataset when ``-d synthetic`` finds no files.
    """
    path_3d, path_2d = data_files(args)
    if args.dataset == "synthetic" and not (args.data_3d or args.data_2d):
        ensure_synthetic_data(path_3d, path_2d, args.keypoints, log, generate_synthetic)
    _check_files_exist(args, path_3d, path_2d)
    dataset = load_dataset(args.dataset, path_3d)
    if path_2d is None:
        log(f"2D input: the ground-truth 2D of {path_3d} (the 3D projected through the cameras; 3DHP: annotations)")
    keypoints = load_keypoints(path_2d, dataset)
    actions = None if args.actions == "*" else split_list(args.actions)
    if args.render:
        subjects = [args.viz_subject] if args.viz_subject else dataset.subjects()
        test = build_sequences(dataset, keypoints, subjects, [args.viz_action])
        return RunData(dataset, keypoints, "none", [], [], test, subjects, [])
    test_subjects = split_list(args.subjects_test)
    val_subjects = split_list(args.val_subjects) or test_subjects
    train = []
    if not args.evaluate:
        train = build_sequences(dataset, keypoints, split_list(args.subjects_train), actions,
                                downsample=args.downsample, subset=args.subset, seed=args.seed)
    test = build_sequences(dataset, keypoints, test_subjects, actions)
    val = test if val_subjects == test_subjects else build_sequences(dataset, keypoints, val_subjects, actions)
    data = RunData(dataset, keypoints, protocol_for(args.dataset), train, val, test, test_subjects, val_subjects)
    check_test_set_complete(data, actions, log)
    return data


def check_frames(num_frames: int, sequences: list, flag_source: str, shortened_by: str = "") -> None:
    """``-f`` longer than every sequence is an error (the model would only ever see padding); ``shortened_by`` names
    the flags that cut the sequences (``--subset 0.1``), which are then the ones to change."""
    if sequences and num_frames > max(len(seq) for seq in sequences):
        longest = max(len(seq) for seq in sequences)
        if shortened_by:
            raise UserError(f"{shortened_by}: shortened the training sequences to at most {longest} frames, fewer "
                            f"than {flag_source} {num_frames}; keep more of each sequence or lower -f")
        raise UserError(f"{flag_source} {num_frames}: longer than every sequence (the longest has {longest} frames)")
