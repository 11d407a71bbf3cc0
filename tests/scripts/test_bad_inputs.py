"""Issue 16's acceptance: every bad input and crafted payload through the command lines, as a user would meet it.

Each case runs an entry point in-process through `run_cli` (as ``python run.py ...`` does) and asserts: exit code 2,
exactly one ``error:`` line naming the file or flag, no traceback, no marker file (a crafted payload never ran), and
nothing new in the output folder, neither at a final nor at a temporary (``.*.tmp-*``) name. The data are tiny
(`write_synthetic_files`: S1 and S9, one 30-frame action, four Human3.6M cameras) and so is the model (``-f 9 -cs 16
-dep 1``). Loader-level payload tests (every loader, in-process) are in tests/core/test_untrusted_payloads.py.
"""

from __future__ import annotations

import importlib.util
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import H36M_METADATA, ROOT, ShellPayload, detections_file, save_npz, write_synthetic_files

import run
from common.cli import run_arguments
from common.core.errors import run_cli
from common.core.files import TEMP_NAME
from common.video.video_io import VideoWriter
from data import prepare_data_2d_custom

_spec = importlib.util.spec_from_file_location("video_to_3d", ROOT / "inference" / "video_to_3d.py")
video_to_3d = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(video_to_3d)

REFUSED = "refused to load posix.system"
TINY = ("-f", "9", "-cs", "16", "-dep", "1", "-b", "72", "-e", "1")
QUIET = ("--workers", "0", "--no-progress", "--nolog", "-gpu", "cpu")


@dataclass
class Env:
    """The shared inputs: tiny synthetic data, a run trained on it, videos."""

    data: Path
    trained: Path  # -c folder of a finished run (best_epoch.bin, last_epoch.bin)
    video: Path  # 32x32, 30 frames

    def train(self, checkpoint_dir: Path, model: tuple[str, ...] = TINY) -> list[str]:
        return ["-d", "synthetic", "-k", "gt", "--data-dir", str(self.data), "-str", "S1", "-ste", "S9", *model,
                *QUIET, "-c", str(checkpoint_dir)]

    def lift(self, output_dir: Path, checkpoint: Path) -> list[str]:
        return [str(self.video), "--checkpoint", str(checkpoint), "--output", str(output_dir / "o.mp4")]

    def evaluate(self, checkpoint_dir: Path, checkpoint: Path) -> list[str]:
        return ["-d", "synthetic", "-k", "gt", "--data-dir", str(self.data), "-ste", "S9", *QUIET, "-c",
                str(checkpoint_dir), "--evaluate", str(checkpoint)]


@dataclass
class Case:
    main: Callable
    argv: list[str]
    names: str | tuple[str, ...]  # what the error line must contain (the file or flag, and what is wrong)
    watch: Path  # output folder: nothing may appear in it


def write_video(path: Path, size: tuple[int, int], frames: int) -> Path:
    with VideoWriter(path, fps=25) as writer:
        for index in range(frames):
            writer.write(np.full((size[1], size[0], 3), index * 8, np.uint8))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    data = tmp_path_factory.mktemp("data")
    write_synthetic_files(data)
    env = Env(data, data / "run", write_video(data / "small.mp4", (32, 32), 30))
    run.main(env.train(env.trained))
    return env


def trusted(path: Path) -> dict:
    """The members of one of our own test files (trusted: written above), dicts unwrapped."""
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key].item() if data[key].dtype == object else data[key] for key in data.files}


def changed_checkpoint(env: Env, path: Path, change: Callable[[dict], None]) -> Path:
    """A copy of the trained best_epoch.bin with ``change(stored)`` applied."""
    stored = torch.load(env.trained / "best_epoch.bin", weights_only=True)
    change(stored)
    torch.save(stored, path)
    return path


def scaled_2d(env: Env, path: Path, scale: float) -> Path:
    members = trusted(env.data / "data_2d_synthetic_gt.npz")
    positions = {s: {a: [c * scale for c in cams] for a, cams in acts.items()}
                 for s, acts in members["positions_2d"].items()}
    return save_npz(path, positions_2d=positions, metadata=H36M_METADATA)


def mpi_inf_3dhp_dir(directory: Path, payload) -> Path:
    """An mmpose-style 3DHP annotation file and its cameras_train.pkl, the payload inside the camera entry."""
    rng = np.random.default_rng(0)
    directory.mkdir()
    names = np.array([f"S1_Seq1_Cam0_{frame:06d}.jpg" for frame in range(1, 41)])
    points = np.concatenate([rng.uniform(-0.5, 0.5, (40, 17, 2)), rng.uniform(3, 4, (40, 17, 1))], axis=-1)
    part = np.concatenate([1024 + 1500 * points[..., :2] / points[..., 2:], np.ones((40, 17, 1))], axis=-1)
    np.savez(directory / "train.npz", imgname=names, part=part, S=np.concatenate([points, np.ones((40, 17, 1))], -1))
    camera = {"f": np.array([[1500.0], [1500.0]]), "c": np.array([[1024.0], [1024.0]]), "w": 2048, "h": 2048,
              "name": payload}
    with open(directory / "cameras_train.pkl", "wb") as handle:
        pickle.dump({"S1_Seq1_Cam0": camera}, handle)
    return directory


# --- the cases: (tmp folder, marker, env) -> Case --------------------------------------------------------------------


def payload_2d(tmp: Path, marker: Path, env: Env) -> Case:
    members = trusted(env.data / "data_2d_synthetic_gt.npz")
    members["metadata"] = {**members["metadata"], "note": ShellPayload(marker)}
    path = save_npz(tmp / "evil_2d.npz", **members)
    return Case(run.main, [*env.train(tmp / "ck"), "--data-2d", str(path)], (str(path), REFUSED), tmp / "ck")


def payload_3d(tmp: Path, marker: Path, env: Env) -> Case:
    members = trusted(env.data / "data_3d_synthetic.npz")
    path = save_npz(tmp / "evil_3d.npz", **members, note={"x": ShellPayload(marker)})
    return Case(run.main, [*env.train(tmp / "ck"), "--data-3d", str(path)], (str(path), REFUSED), tmp / "ck")


def payload_3dhp_cameras(tmp: Path, marker: Path, env: Env) -> Case:
    directory = mpi_inf_3dhp_dir(tmp / "3dhp", ShellPayload(marker))
    argv = ["-d", "mpi_inf_3dhp", "-k", "gt", "--data-dir", str(directory), "-str", "S1", "-ste", "S1", *TINY, *QUIET,
            "-c", str(tmp / "ck")]
    return Case(run.main, argv, (str(directory / "cameras_train.pkl"), REFUSED), tmp / "ck")


def evil_checkpoint(tmp: Path, marker: Path, official: bool) -> Path:
    weights = {"module.head.1.weight" if official else "head.weight": torch.ones(3, 4)}
    state = {"epoch": 80, "lr": 4e-5, "model_pos": weights}
    if official:
        state["random_state"] = ShellPayload(marker)
    else:
        state.update(model_config={"depth": 1}, history={"note": ShellPayload(marker)})
    torch.save(state, tmp / "evil.bin")
    return tmp / "evil.bin"


def payload_evaluate_project(tmp: Path, marker: Path, env: Env) -> Case:
    path = evil_checkpoint(tmp, marker, official=False)
    return Case(run.main, env.evaluate(tmp / "ck", path), (str(path), REFUSED), tmp / "ck")


def payload_evaluate_official(tmp: Path, marker: Path, env: Env) -> Case:
    path = evil_checkpoint(tmp, marker, official=True)
    return Case(run.main, env.evaluate(tmp / "ck", path), (str(path), REFUSED), tmp / "ck")


def payload_resume(tmp: Path, marker: Path, env: Env) -> Case:
    path = evil_checkpoint(tmp, marker, official=False)
    return Case(run.main, [*env.train(tmp / "ck"), "-r", str(path)], (str(path), REFUSED), tmp / "ck")


def payload_detections(tmp: Path, marker: Path, env: Env) -> Case:
    path = detections_file(tmp / "detections", ShellPayload(marker))
    argv = ["-i", str(path.parent), "-o", "mine", "--output-dir", str(tmp / "out")]
    return Case(prepare_data_2d_custom.main, argv, (str(path), REFUSED), tmp / "out")


def payload_video_to_3d(tmp: Path, marker: Path, env: Env) -> Case:
    path = evil_checkpoint(tmp, marker, official=False)
    return Case(video_to_3d.main, env.lift(tmp / "out", path), (str(path), REFUSED), tmp / "out")


def diverged_training(tmp: Path, marker: Path, env: Env) -> Case:
    return Case(run.main, [*env.train(tmp / "ck"), "-lr", "1e12"], "lower -lr", tmp / "ck")


def nan_weights(stored: dict) -> None:
    next(iter(stored["model_pos"].values()))[...] = float("nan")


def non_finite_checkpoint(tmp: Path, marker: Path, env: Env) -> Case:
    path = changed_checkpoint(env, tmp / "diverged.bin", nan_weights)
    return Case(run.main, env.evaluate(tmp / "ck", path), f"{path}: not a usable model: 1 weight tensor(s) are not "
                "finite", tmp / "ck")


def non_finite_checkpoint_video_to_3d(tmp: Path, marker: Path, env: Env) -> Case:
    path = changed_checkpoint(env, tmp / "diverged.bin", nan_weights)
    return Case(video_to_3d.main, env.lift(tmp / "out", path), f"{path}: not a usable model", tmp / "out")


def non_finite_prediction(tmp: Path, marker: Path, env: Env) -> Case:
    def huge_head(stored: dict) -> None:
        stored["model_pos"]["head.weight"][...] = 3e38  # finite weights whose output overflows to infinity

    path = changed_checkpoint(env, tmp / "huge.bin", huge_head)
    return Case(run.main, env.evaluate(tmp / "ck", path), f"{path}: the model predicted NaN or infinite values",
                tmp / "ck")


def checkpoint_dir_is_a_file(tmp: Path, marker: Path, env: Env) -> Case:
    (tmp / "a_file").write_text("")
    return Case(run.main, env.train(tmp / "a_file"), f"-c/--checkpoint {tmp / 'a_file'}: {tmp / 'a_file'} is a file",
                tmp)


def run_folder_reused(tmp: Path, marker: Path, env: Env) -> Case:
    shutil.copytree(env.trained, tmp / "ck")
    return Case(run.main, env.train(tmp / "ck"), f"-c/--checkpoint {tmp / 'ck'}: already holds a run", tmp / "ck")


def unknown_device(tmp: Path, marker: Path, env: Env) -> Case:
    argv = [*env.lift(tmp / "out", env.trained / "best_epoch.bin"), "--device", "banana"]
    return Case(video_to_3d.main, argv, "--device banana: expected cpu, cuda or cuda:N", tmp / "out")


def absent_cuda_device(tmp: Path, marker: Path, env: Env) -> Case:
    if torch.cuda.device_count() > 5:
        pytest.skip("this machine has a cuda:5")
    case = unknown_device(tmp, marker, env)
    case.argv[-1], case.names = "cuda:5", "--device cuda:5: this machine has"
    return case


def missing_test_sequences(tmp: Path, marker: Path, env: Env) -> Case:
    members = trusted(env.data / "data_3d_synthetic.npz")
    members["positions_3d"]["S9"]["Run"] = members["positions_3d"]["S9"]["Walk"]  # 3D without 2D
    path_3d = save_npz(tmp / "data_3d.npz", **members)
    path_2d = env.data / "data_2d_synthetic_gt.npz"
    return Case(run.main, [*env.train(tmp / "ck"), "--data-3d", str(path_3d), "--data-2d", str(path_2d)],
                f"{path_2d}: 4 test sequence(s) have 3D but no 2D keypoints: S9 / Run / camera 0", tmp / "ck")


def millimetres_3d(tmp: Path, marker: Path, env: Env) -> Case:
    members = trusted(env.data / "data_3d_synthetic.npz")
    members["positions_3d"] = {s: {a: p * 1000 for a, p in acts.items()} for s, acts in members["positions_3d"].items()}
    path = save_npz(tmp / "data_3d_mm.npz", **members)
    return Case(run.main, [*env.train(tmp / "ck"), "--data-3d", str(path)],
                f"{path}: positions_3d['S1']['Walk']: positions look like millimetres", tmp / "ck")


def normalized_2d(tmp: Path, marker: Path, env: Env) -> Case:
    path = scaled_2d(env, tmp / "normalized.npz", 1 / 1000)
    return Case(run.main, [*env.train(tmp / "ck"), "--data-2d", str(path)],
                f"{path}: S1 / Walk / camera 0: every 2D coordinate lies within [-1.5, 1.5]", tmp / "ck")


def zero_2d(tmp: Path, marker: Path, env: Env) -> Case:
    path = scaled_2d(env, tmp / "zeros.npz", 0)
    return Case(run.main, [*env.train(tmp / "ck"), "--data-2d", str(path)],
                f"{path}: S1 / Walk / camera 0: every 2D coordinate is 0", tmp / "ck")


def render(env: Env, tmp: Path, video: Path | None) -> list[str]:
    (tmp / "out").mkdir(exist_ok=True)
    argv = [*env.evaluate(env.trained, env.trained / "best_epoch.bin"), "--render", "--viz-subject", "S9",
            "--viz-action", "Walk", "--viz-output", str(tmp / "out" / "r.mp4")]
    return argv + (["--viz-video", str(video)] if video else [])


def viz_video_of_another_size(tmp: Path, marker: Path, env: Env) -> Case:
    return Case(run.main, render(env, tmp, env.video),
                f"--viz-video {env.video}: 32x32 pixels, but the 2D keypoints of S9 / Walk / camera 0 are in a "
                "1000x1002 frame", tmp / "out")


def viz_video_of_another_length(tmp: Path, marker: Path, env: Env) -> Case:
    video = write_video(tmp / "short.mp4", (1000, 1002), 5)
    return Case(run.main, render(env, tmp, video),
                f"--viz-video {video}: 5 frames after --viz-skip 0, but S9 / Walk has 30", tmp / "out")


def malformed_loader_state(tmp: Path, marker: Path, env: Env) -> Case:
    shutil.copytree(env.trained, tmp / "ck")
    path = tmp / "ck" / "last_epoch.bin"
    stored = torch.load(path, weights_only=True)
    stored["loader_state"] = {"epoch": 1}
    torch.save(stored, path)
    argv = [*env.train(tmp / "ck"), "-r", "last_epoch.bin", "-e", "2"]
    return Case(run.main, argv, f"-r {path}: the checkpoint's loader_state is malformed", tmp / "ck")


def text_file_as_checkpoint(tmp: Path, marker: Path, env: Env) -> Case:
    (tmp / "notes.bin").write_text("my notes\n")
    return Case(run.main, env.evaluate(tmp / "ck", tmp / "notes.bin"), f"{tmp / 'notes.bin'}: not a checkpoint (a "
                "text file); expected a checkpoint written by run.py or an official MixSTE checkpoint", tmp / "ck")


def directory_as_checkpoint(tmp: Path, marker: Path, env: Env) -> Case:
    (tmp / "folder").mkdir()
    return Case(run.main, env.evaluate(tmp / "ck", tmp / "folder"), f"--evaluate {tmp / 'folder'}: is a directory",
                tmp / "ck")


def bad_model_config(tmp: Path, marker: Path, env: Env) -> Case:
    path = changed_checkpoint(env, tmp / "other.bin", lambda stored: stored["model_config"].update(colour="red"))
    return Case(run.main, env.evaluate(tmp / "ck", path),
                f"{path}: the checkpoint's model_config is not usable (model config: unknown field(s) colour)",
                tmp / "ck")


def subset_too_short(tmp: Path, marker: Path, env: Env) -> Case:
    return Case(run.main, [*env.train(tmp / "ck"), "--subset", "0.1"],
                "--subset 0.1: shortened the training sequences to at most 3 frames, fewer than -f/--number-of-frames "
                "9", tmp / "ck")


def model_field_named_as_flag(tmp: Path, marker: Path, env: Env) -> Case:
    model = ("--preset", "mixste", "-f", "9", "-cs", "20", "-dep", "1", "-e", "1")
    return Case(run.main, env.train(tmp / "ck", model), "-cs 20: expected a multiple of --num-heads=8", tmp / "ck")


def full_disk_checkpoint(tmp: Path, marker: Path, env: Env) -> Case:
    return Case(run.main, env.train(tmp / "ck"), f"{tmp / 'ck' / 'best_epoch.bin'}: could not write the file (No space "
                "left on device): free some space", tmp / "ck")


def full_disk_preparation(tmp: Path, marker: Path, env: Env) -> Case:
    path = detections_file(tmp / "detections", None)
    argv = ["-i", str(path.parent), "-o", "mine", "--output-dir", str(tmp / "out")]
    return Case(prepare_data_2d_custom.main, argv, f"{tmp / 'out' / 'data_2d_custom_mine.npz'}: could not write the "
                "file (No space left on device)", tmp / "out")


def full_disk_video(tmp: Path, marker: Path, env: Env) -> Case:
    return Case(run.main, render(env, tmp, None), f"{tmp / 'out' / 'r.mp4'}: could not write the file (No space left "
                "on device)", tmp / "out")


CASES = {f.__name__: f for f in (
    payload_2d, payload_3d, payload_3dhp_cameras, payload_evaluate_project, payload_evaluate_official, payload_resume,
    payload_detections, payload_video_to_3d, diverged_training, non_finite_checkpoint,
    non_finite_checkpoint_video_to_3d, non_finite_prediction, checkpoint_dir_is_a_file, run_folder_reused,
    unknown_device, absent_cuda_device, missing_test_sequences, millimetres_3d, normalized_2d, zero_2d,
    viz_video_of_another_size, viz_video_of_another_length, malformed_loader_state, text_file_as_checkpoint,
    directory_as_checkpoint, bad_model_config, subset_too_short, model_field_named_as_flag, full_disk_checkpoint,
    full_disk_preparation, full_disk_video,
)}


def _full_disk(monkeypatch, name: str) -> None:
    """Writes of this case fail as on a full disk (ENOSPC) after part of the file was written."""
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if name == "full_disk_checkpoint":
        def save_partly(obj, handle, *args, **kwargs):
            handle.write(b"half a checkpoint")
            fail()

        monkeypatch.setattr(torch, "save", save_partly)
    elif name == "full_disk_preparation":
        monkeypatch.setattr(np, "savez_compressed", fail)
    elif name == "full_disk_video":
        def encoder(*args, **kwargs):
            yield  # primed by send(None); the first frame fails
            fail()

        import imageio_ffmpeg
        monkeypatch.setattr(imageio_ffmpeg, "write_frames", encoder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def run_failing(main: Callable, argv: list[str], capsys) -> tuple[list[str], str]:
    """Run ``main(argv)`` through `run_cli`; return the stderr lines that contain ``error:``, and the whole stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    return [line for line in err.splitlines() if "error:" in line], err


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_and_leaves_nothing(name, env, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "MARKER"
    case = CASES[name](tmp_path, marker, env)
    case.watch.mkdir(parents=True, exist_ok=True)
    before = snapshot(case.watch)
    _full_disk(monkeypatch, name)
    errors, err = run_failing(case.main, case.argv, capsys)
    assert err.strip().splitlines() == errors and len(errors) == 1, err
    names = (case.names,) if isinstance(case.names, str) else case.names
    assert errors[0].startswith("error: ") and all(name in errors[0] for name in names), errors[0]
    assert "Traceback" not in err
    assert not marker.exists(), "a crafted payload ran"
    assert snapshot(case.watch) == before, "a file was written or changed"
    assert not [p for p in case.watch.iterdir() if TEMP_NAME.fullmatch(p.name)], "a temporary file was left"


def float_flags() -> list[str]:
    """Every float flag of run.py (type: a finite number of some range)."""
    parser = run_arguments.build_parser()
    return [action.option_strings[-1] for action in parser._actions if getattr(action.type, "__name__", "") == "number"]


def test_float_flags_are_found():
    assert {"--learning-rate", "--lambda-tc", "--grad-clip", "--time-budget", "--warmup-epochs", "--weight-decay",
            "--subset"} <= set(float_flags())


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("flag", float_flags())
def test_float_flags_refuse_nan_and_infinity(flag, value, capsys):
    errors, err = run_failing(run.main, [flag, value], capsys)
    assert err.strip().splitlines() == errors and len(errors) == 1, err
    assert flag in errors[0] and ": expected " in errors[0] and f"got {value}" in errors[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_video_to_3d_float_flag_refuses_nan_and_infinity(value, env, tmp_path, capsys):
    argv = [*env.lift(tmp_path, env.trained / "best_epoch.bin"), "--viz-size", value]
    errors, err = run_failing(video_to_3d.main, argv, capsys)
    assert len(errors) == 1 and "argument --viz-size: expected a finite number > 0" in errors[0], err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []

