"""Learning-rate probe: the same model, initial weights and clip order trained for a few hundred steps with several
learning rates / warm-ups, printing the training MPJPE over windows of steps.

It answers "does this learning rate train this model size at all" cheaply, where a full training run is out of reach
(e.g. the paper configuration, F=243 C=512 depth 8, on a CPU). Steps use run.py's objective (MixSTE's weighted MPJPE
+ 0.5 temporal consistency + 2.0 velocity, flip augmentation, AdamW with weight decay 0.1); the numbers are training
errors on the clips being fitted, not test results.

Example (real Human3.6M from ../shared, the paper configuration, one clip of 243 frames per step):

    python benchmarks/probe_lr.py -f 243 -cs 512 -dep 8 --clips-per-step 1 --steps 120 \\
        --settings 1e-3:0,1e-3:60,4e-4:60,4e-5:0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.datasets.keypoints import load_keypoints  # noqa: E402
from common.datasets.registry import load_dataset  # noqa: E402
from common.datasets.sequences import build_sequences  # noqa: E402
from common.datasets.training_clips import TrainClips, make_train_loader  # noqa: E402
from common.model.config import apply_preset  # noqa: E402
from common.model.metaformer import build_model  # noqa: E402
from common.training import step as training  # noqa: E402
from common.training.losses import joint_weights_for  # noqa: E402


def parse_settings(text: str) -> list[tuple[float, int]]:
    """``"1e-3:0,4e-5:100"`` -> [(0.001, 0), (4e-05, 100)] (learning rate : warm-up steps)."""
    settings = []
    for item in text.split(","):
        try:
            lr, warmup = item.split(":")
            settings.append((float(lr), int(warmup)))
        except ValueError:
            raise UserError(f"--settings: expected LR:WARMUP_STEPS items separated by commas, got {item!r}") from None
        if settings[-1][0] <= 0 or settings[-1][1] < 0:
            raise UserError(f"--settings: expected a positive learning rate and warm-up >= 0, got {item!r}")
    return settings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "h36m"),
                        help="folder with data_3d_h36m.npz (2D input: the projected ground truth)")
    parser.add_argument("-str", "--subjects-train", default="S1,S5")
    parser.add_argument("--preset", default="default")
    parser.add_argument("-f", "--frames", type=int, default=243)
    parser.add_argument("-cs", "--channels", type=int, default=512)
    parser.add_argument("-dep", "--depth", type=int, default=8)
    parser.add_argument("--clips-per-step", type=int, default=1)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--settings", default="1e-3:0,1e-3:60,4e-5:0", help="LR:WARMUP_STEPS,... to compare")
    parser.add_argument("--window", type=int, default=20, help="steps per reported window")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.settings = parse_settings(args.settings)
    for flag, value in (("--steps", args.steps), ("--window", args.window), ("--clips-per-step", args.clips_per_step)):
        if value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    return args


def probe(args, lr: float, warmup: int, clips: TrainClips, config) -> tuple[list[float], float]:
    """Training MPJPE (m) of every step and the mean seconds per step, for one (lr, warm-up)."""
    torch.manual_seed(args.seed)
    model = build_model(config).train()
    loader = make_train_loader(clips, args.clips_per_step, args.seed)
    loader.sampler.set_epoch(0)
    optimizer = training.make_optimizer(model, lr, weight_decay=0.1)
    weights = joint_weights_for(config.num_joints)
    settings = training.StepSettings(training.LossWeights(tuple(float(w) for w in weights), 0.5, 2.0))
    errors = []
    start = time.perf_counter()
    bar = tqdm(total=args.steps, desc=f"lr {lr:g} warm-up {warmup}", unit="step", leave=False)
    while len(errors) < args.steps:
        for batch in loader:
            training.set_learning_rate(optimizer, lr * min(1.0, (len(errors) + 1) / warmup) if warmup else lr)
            terms = training.train_step(model, batch[0], batch[1], optimizer, settings)
            errors.append(terms["mpjpe"])
            bar.update(1)
            bar.set_postfix(mpjpe=f"{terms['mpjpe'] * 1000:.0f}mm", refresh=False)
            if len(errors) == args.steps:
                break
        loader.sampler.set_epoch(loader.sampler.epoch + 1)
    bar.close()
    return errors, (time.perf_counter() - start) / args.steps


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = Path(args.data_dir) / "data_3d_h36m.npz"
    if not path.is_file():
        raise UserError(f"{path}: not found (--data-dir: the folder of data_3d_h36m.npz)")
    dataset = load_dataset("h36m", path)
    keypoints = load_keypoints(None, dataset)
    sequences = build_sequences(dataset, keypoints, args.subjects_train.split(","), None)
    skeleton = dataset.skeleton
    clips = TrainClips(sequences, args.frames, args.frames, flip=True, kps_left=keypoints.kps_left,
                       kps_right=keypoints.kps_right, joints_left=skeleton.joints_left(),
                       joints_right=skeleton.joints_right())
    config = apply_preset(args.preset, {"num_frames": args.frames, "embed_dim": args.channels, "depth": args.depth,
                                        "drop_path_rate": 0.0})
    print(f"preset {args.preset}, F={args.frames}, C={args.channels}, depth {args.depth}, {args.clips_per_step} "
          f"clip(s) per step, {args.steps} steps, train {args.subjects_train} (projected ground-truth 2D), "
          f"seed {args.seed}, {torch.get_num_threads()} thread(s)", flush=True)
    results = {}
    for lr, warmup in args.settings:
        results[(lr, warmup)] = probe(args, lr, warmup, clips, config)
        errors, seconds = results[(lr, warmup)]
        print(f"lr {lr:g}, warm-up {warmup} steps: last-window training MPJPE "
              f"{np.mean(errors[-args.window:]) * 1000:.1f} mm ({seconds:.2f} s/step)", flush=True)
    windows = range(0, args.steps, args.window)
    print("\ntraining MPJPE (mm), mean over steps")
    print("| lr | warm-up | " + " | ".join(f"{w + 1}-{min(w + args.window, args.steps)}" for w in windows) + " |")
    print("|---|---|" + "---|" * len(windows))
    for (lr, warmup), (errors, _) in results.items():
        cells = " | ".join(f"{np.mean(errors[w:w + args.window]) * 1000:.0f}" for w in windows)
        print(f"| {lr:g} | {warmup} | {cells} |")


if __name__ == "__main__":
    run_cli(main)
