"""run.py end to end on a tiny synthetic dataset, and its bad-input behaviour (one line, exit 2, no traceback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, make_tiny_synthetic

TINY_MODEL = ["-f", "9", "-cs", "16", "-dep", "1", "-b", "72", "--workers", "0", "--no-progress", "-gpu", "cpu"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A tiny synthetic dataset: S1 (train) and S9 (test), 2 action groups, 100 frames per take."""
    return make_tiny_synthetic(tmp_path_factory, "Walking,Sitting")


def run_py(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def final_mpjpe(stdout: str) -> float:
    match = re.search(r"final MPJPE: ([0-9.]+) mm", stdout)
    assert match, stdout
    return float(match.group(1))


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real command-line training run (2 epochs) shared by the tests below: (working directory, result)."""
    workdir = tmp_path_factory.mktemp("run")
    result = run_py("-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-str", "S1", "-ste", "S9",
                    *TINY_MODEL, "-e", "2", "-cf", "1", "-c", "ck", "-l", "log", "--export-training-curves",
                    cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir, result


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(tiny_data, trained, capsys):
    workdir, train = trained
    for name in ("epoch_1.bin", "epoch_2.bin", "last_epoch.bin", "best_epoch.bin", "best_epoch_eval.json",
                 "loss_3d.png", "lr.png"):
        assert (workdir / "ck" / name).is_file(), name
    log_text = (workdir / "log" / "log.txt").read_text()
    assert "final MPJPE" in log_text and list((workdir / "log").glob("events.out.tfevents.*"))
    trained_mpjpe = final_mpjpe(train.stdout)
    results = json.loads((workdir / "ck" / "best_epoch_eval.json").read_text())
    assert results["average"]["mpjpe"] == pytest.approx(trained_mpjpe, abs=0.006)
    assert set(results["groups"]) == {"Walking", "Sitting"}
    assert results["counting"].startswith("once") and results["flip TTA"] == "on"
    assert results["scored prediction"].startswith("raw")
    stored = torch.load(workdir / "ck" / "best_epoch.bin", weights_only=True)
    assert stored["model_config"]["embed_dim"] == 16 and not any(k.startswith("module.") for k in stored["model_pos"])

    # --evaluate rebuilds the model from the file (no model flags needed) and gives the same number
    sys.path.insert(0, str(ROOT))
    import run

    run.main(["-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-ste", "S9", "-c", str(workdir / "ck"),
              "--evaluate", "best_epoch.bin", "--nolog", "--no-progress"])
    evaluated = capsys.readouterr().out
    assert final_mpjpe(evaluated) == trained_mpjpe
    run.main(["-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-ste", "S9", "-c", str(workdir / "ck"),
              "--evaluate", "best_epoch.bin", "--nolog", "--no-progress", "--eval-zero-root"])
    zeroed = json.loads((workdir / "ck" / "best_epoch_eval.json").read_text())
    assert zeroed["scored prediction"].startswith("root-zeroed")
    assert zeroed["average"]["mpjpe"] != pytest.approx(results["average"]["mpjpe"], abs=1e-6)

    # bad input through the real command line: one line on stderr, exit code 2, no traceback
    wrong = run_py("--evaluate", "ck/best_epoch.bin", "-r", "ck/last_epoch.bin", cwd=workdir)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "error: --resume/--evaluate: give one of them (resume trains, evaluate only evaluates)"]


def _bad_run(argv: list[str], capsys) -> str:
    """Run run.main in-process through run_cli; return the single error line (asserting exit code 2)."""
    sys.path.insert(0, str(ROOT))
    import run
    from common.core.errors import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: run.main(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in lines[0]
    return lines[0]


def test_bad_inputs_give_one_clear_line(tiny_data, trained, tmp_path, capsys):
    trained_checkpoint = trained[0] / "ck" / "best_epoch.bin"
    data = ["-d", "synthetic", "--data-dir", str(tiny_data), "-k", "gt", "--nolog", "--no-progress", "-c",
            str(tmp_path / "fresh")]
    tiny = [*TINY_MODEL, "-e", "1", "-c", str(tmp_path / "ck")]
    assert "-d/--dataset" in _bad_run(["-d", "nope"], capsys)
    missing = _bad_run(["-d", "h36m", "--data-dir", str(tmp_path), "--nolog", "-c", str(tmp_path / "ck")], capsys)
    assert f"{tmp_path}/data_2d_h36m_cpn_ft_h36m_dbb.npz: 2D keypoints file not found" in missing
    assert "prepare_data_h36m.py" in missing  # how to create it
    unknown_keypoints = _bad_run([*data[:4], "-k", "cpn", *data[6:]], capsys)
    assert "data_2d_synthetic_cpn.npz: 2D keypoints file not found; the synthetic dataset has -k gt or -k noisy" \
        in unknown_keypoints
    assert "'S7' not available" in _bad_run([*data, "-str", "S1", "-ste", "S7", *tiny], capsys)
    assert "action(s) Dancing not found" in _bad_run([*data, "-str", "S1", "-ste", "S9", "-a", "Dancing", *tiny],
                                                     capsys)
    too_long = _bad_run([*data, "-str", "S1", "-ste", "S9", *tiny[:1], "500", *tiny[2:]], capsys)
    assert "-f/--number-of-frames 500: longer than every sequence (the longest has 100 frames)" in too_long
    assert "--resume/--evaluate" in _bad_run([*data, "-r", "a.bin", "--evaluate", "b.bin"], capsys)
    assert "-lr/--learning-rate: expected a finite number > 0, got nan" in _bad_run([*data, "-lr", "nan"], capsys)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert f"-c/--checkpoint {a_file}: {a_file} is a file" in _bad_run([*data, "-c", str(a_file)], capsys)
    assert "already holds a run" in _bad_run([*data, "-str", "S1", "-ste", "S9", *tiny[:-1],
                                              str(trained_checkpoint.parent)], capsys)
    # render targets are checked before the checkpoint is even read (this one is not a checkpoint at all)
    render = [*data, "-c", str(tmp_path), "--evaluate", str(a_file), "--render", "--viz-subject", "S9",
              "--viz-export", str(tmp_path / "x.npy")]
    assert "--viz-camera 7: S9 / Walking has 2D keypoints for camera(s) 0, 1, 2, 3" in \
        _bad_run([*render, "--viz-action", "Walking", "--viz-camera", "7"], capsys)
    assert "action(s) Dancing not found" in _bad_run([*render, "--viz-action", "Dancing"], capsys)
    assert "--viz-output nowhere/v.mp4: directory nowhere does not exist" in \
        _bad_run([*render, "--viz-action", "Walking", "--viz-output", "nowhere/v.mp4"], capsys)
    assert not (tmp_path / "x.npy").exists()

    not_checkpoint = tmp_path / "notes.bin"
    not_checkpoint.write_text("not a checkpoint")
    assert "notes.bin: not a checkpoint" in _bad_run([*data, "-ste", "S9", "--evaluate", str(not_checkpoint)],
                                                     capsys)
    stored = torch.load(trained_checkpoint, weights_only=True)
    stored["model_config"]["depth"] = 2  # weights of depth 1 under a depth-2 configuration
    other = tmp_path / "other.bin"
    torch.save(stored, other)
    message = _bad_run([*data, "-ste", "S9", "--evaluate", str(other)], capsys)
    assert "other.bin: checkpoint of another architecture (missing: spatial_blocks.1." in message
    contradiction = _bad_run([*data, "-ste", "S9", "--evaluate", str(trained_checkpoint), "-f", "27", "-cs", "16"],
                             capsys)
    assert "flags contradict the model stored in the checkpoint: -f/--number-of-frames=27 (checkpoint: 9)" \
        in contradiction


@pytest.mark.slow
def test_render_only_predicts_one_sequence_without_the_protocol(tiny_data, trained, tmp_path, capsys):
    """--evaluate X --render: no protocol, X_eval.json untouched, the export is the evaluation's prediction (flip TTA
    on), and the test subjects need not exist (-ste keeps its default S9,S11; S11 is not in the data)."""
    from common.cli.model_setup import build_from_checkpoint
    from common.datasets.keypoints import load_keypoints
    from common.datasets.registry import load_dataset
    from common.datasets.sequences import build_sequences
    from common.evaluation import protocols

    sys.path.insert(0, str(ROOT))
    import run

    ck = trained[0] / "ck"
    before = (ck / "best_epoch_eval.json").read_bytes()
    export = tmp_path / "walking.npy"
    assert run.main(["-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-c", str(ck), "--evaluate",
                     "best_epoch.bin", "--render", "--viz-subject", "S9", "--viz-action", "Sitting 1", "--viz-camera",
                     "2", "--viz-export", str(export), "--nolog", "--no-progress"]) is None
    assert "final MPJPE" not in capsys.readouterr().out
    assert (ck / "best_epoch_eval.json").read_bytes() == before

    dataset = load_dataset("synthetic", tiny_data / "data_3d_synthetic.npz")
    keypoints = load_keypoints(tiny_data / "data_2d_synthetic_gt.npz", dataset)
    seq = [s for s in build_sequences(dataset, keypoints, ["S9"], ["Sitting 1"]) if s.camera_index == 2][0]
    loaded = build_from_checkpoint(ck / "best_epoch.bin")
    settings = protocols.PredictSettings(9, flip_tta=True, kps_left=tuple(keypoints.kps_left),
                                         kps_right=tuple(keypoints.kps_right),
                                         joints_left=tuple(dataset.skeleton.joints_left()),
                                         joints_right=tuple(dataset.skeleton.joints_right()))
    expected = protocols.predict_poses(protocols.model_predict_fn(loaded.model, torch.device("cpu")), seq.poses_2d,
                                       settings)
    np.testing.assert_allclose(np.load(export), expected, atol=1e-6)


def test_official_mixste_checkpoint_evaluates_with_attention_mixers(tiny_data, tmp_path, capsys):
    from conftest import shared_path

    official = shared_path("fixtures", "mixste_official_f27_d64_dep2_s0.bin")
    sys.path.insert(0, str(ROOT))
    import run

    argv = ["-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-ste", "S9", "-a", "Walking", "--nolog",
            "--no-progress", "-c", str(tmp_path), "--evaluate", str(official)]
    mpjpe = run.main(argv)
    out = capsys.readouterr().out
    assert "official MixSTE checkpoint, 7 epochs" in out and "frames per window: 27" in out
    assert 0 < mpjpe < 5  # random official weights: a finite error in metres
    results = json.loads((tmp_path / "mixste_official_f27_d64_dep2_s0_eval.json").read_text())
    assert results["average"]["mpjpe"] == pytest.approx(mpjpe * 1000)
    assert "-f" not in " ".join(argv) and not (official.parent / "mixste_official_f27_d64_dep2_s0_eval.json").exists()
    message = _bad_run([*argv, "-f", "81"], capsys)
    assert "official MixSTE weights do not match the flags: num_frames=81 (file: 27)" in message


def test_evaluate_takes_a_shipped_model_verified_by_its_sha256(tiny_data, tmp_path, monkeypatch, capsys):
    """``-c DIR --evaluate pretrained_NAME.bin`` finds a shipped model in the repository's checkpoint/ folder (here a
    registry of one tiny test model), verifies its sha256 and evaluates it; a wrong digest is one line."""
    import hashlib

    from common.model import pretrained
    from common.model.checkpoints import save_checkpoint
    from common.model.config import ModelConfig
    from common.model.metaformer import build_model

    sys.path.insert(0, str(ROOT))
    import run

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    config = ModelConfig(num_frames=27, embed_dim=16, depth=1)
    path = save_checkpoint(shipped / "pretrained_tiny_f27.bin", epoch=5, lr=1e-3, model=build_model(config),
                           optimizer=None, model_config=config.to_dict(), best_val=None, loader_state=None)

    def register(sha256: str) -> None:
        monkeypatch.setattr(pretrained, "PRETRAINED", {"tiny_f27": pretrained.PretrainedModel(
            name="tiny_f27", file_name=path.name, sha256=sha256, model_config={"num_frames": 27},
            description="a tiny test model", notice="test data only")})

    monkeypatch.setattr(pretrained, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(pretrained, "_DIGESTS", {})
    register(hashlib.sha256(path.read_bytes()).hexdigest())
    argv = ["-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-ste", "S9", "-a", "Walking", "--nolog",
            "--no-progress", "-gpu", "cpu", "-c", str(tmp_path / "ck"), "--evaluate", "pretrained_tiny_f27.bin"]
    mpjpe = run.main(argv)
    out = capsys.readouterr().out
    assert "model: tiny_f27: a tiny test model (test data only)" in out and 0 < mpjpe < 5
    assert (tmp_path / "ck" / "pretrained_tiny_f27_eval.json").is_file()  # in -c DIR, never beside the shipped file
    assert sorted(p.name for p in shipped.iterdir()) == ["pretrained_tiny_f27.bin"]
    register("ab" * 32)
    message = _bad_run(argv, capsys)
    assert message.startswith(f"error: {path}: sha256 ") and f"is not the expected {'ab' * 32}" in message


@pytest.mark.slow
def test_compile_trains_the_same_model_as_eager(tiny_data, tmp_path):
    """--compile (inductor, in place) gives the eager run's weights (to float tolerance) under the usual keys, and a
    --time-budget run stops early and still writes and evaluates its checkpoint."""
    common = ["-d", "synthetic", "-k", "gt", "--data-dir", str(tiny_data), "-str", "S1", "-ste", "S9", *TINY_MODEL,
              "-e", "1", "--no-eval", "--nolog"]
    eager = run_py(*common, "-c", "eager", cwd=tmp_path)
    compiled = run_py(*common, "-c", "compiled", "--compile", cwd=tmp_path)
    assert eager.returncode == 0 and compiled.returncode == 0, compiled.stderr[-2000:]
    assert "runs through torch.compile" in compiled.stdout and "torch.compile" not in eager.stdout
    weights = [torch.load(tmp_path / name / "last_epoch.bin", weights_only=True)["model_pos"]
               for name in ("eager", "compiled")]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        if re.fullmatch(r"temporal_blocks\.\d+\.norm1\.bias", key):
            # pool(x + b) - (x + b) does not depend on b: its true gradient is 0 and AdamW turns the rounding noise
            # (different in fused kernels) into lr-sized steps, so this bias is noise in both runs
            continue
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-4, atol=1e-5, msg=key)
    assert final_mpjpe(compiled.stdout) == pytest.approx(final_mpjpe(eager.stdout), abs=0.05)

    budget = run_py(*common[:-4], "-e", "50", "--no-eval", "--nolog", "-c", "budget", "--time-budget", "0.001",
                    cwd=tmp_path)
    assert budget.returncode == 0, budget.stderr[-2000:]
    assert re.search(r"time budget of 0.001 min reached after \d+ of \d+ steps of epoch 1", budget.stdout)
    assert torch.load(tmp_path / "budget" / "best_epoch.bin", weights_only=True)["epoch"] == 1
    assert final_mpjpe(budget.stdout) > 0
