"""Data benchmark: clips/s of the training loader (`training_clips.make_train_loader`) on the shared Human3.6M set.

Loads the real Human3.6M 3D file and the Stacked Hourglass 2D detections of ``../shared/data/h36m`` (training subjects
present in the file), builds the training clips (flip augmentation on) and, for every number of frames and worker
count, times ``--batches`` batches of ``--batch`` clips after one warm-up batch (worker start-up excluded; printed
separately). Then it times training steps (forward + backward + AdamW) of the paper configuration (F=243, C=512,
depth 8, ``default`` preset) to print how many clips/s the model consumes and the loader-to-model ratio
(goal: >= 20x). Numbers are wall-clock and depend on other load on the machine.

Usage: python benchmarks/bench_data.py [--data-dir ../shared/data/h36m] [--frames 27,243] [--workers 0,2]
       [--batch 64] [--batches 30] [--model-batch 2] [--model-steps 2] [--no-model]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.datasets.keypoints import load_keypoints  # noqa: E402
from common.datasets.registry import load_dataset  # noqa: E402
from common.datasets.sequences import build_sequences  # noqa: E402
from common.datasets.training_clips import TrainClips, make_train_loader  # noqa: E402


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise UserError(f"{flag}: expected at least one value")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "h36m"),
                        help="folder with data_3d_h36m.npz and data_2d_h36m_<keypoints>.npz")  # fmt: skip
    parser.add_argument("--keypoints", default="sh_pt_mpii", help="2D detections name (data_2d_h36m_<name>.npz)")
    parser.add_argument("--frames", default="27,243", help="comma-separated clip lengths F")
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--batch", type=int, default=64, help="clips per batch")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per measurement")
    parser.add_argument("--model-batch", type=int, default=2, help="clips per training step of the paper model")
    parser.add_argument("--model-steps", type=int, default=2, help="timed training steps of the paper model")
    parser.add_argument("--no-model", action="store_true", help="skip the paper-model training-step measurement")
    args = parser.parse_args(argv)
    args.frames = _int_list(args.frames, "--frames")
    args.workers = _int_list(args.workers, "--workers")
    for flag in ("batch", "batches", "model_batch", "model_steps"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')}: expected a positive integer")
    return args


def loader_clips_per_second(clips: TrainClips, batch: int, workers: int, batches: int) -> tuple[float, float, int]:
    """``(clips/s, seconds to the first batch, clips timed)`` over `batches` batches after a warm-up batch."""
    start = time.perf_counter()
    loader = make_train_loader(clips, batch_clips=batch, seed=0, workers=workers)
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    count = 0
    begin = time.perf_counter()
    for _ in range(batches):
        try:
            inputs, _, _ = next(iterator)
        except StopIteration:
            loader.sampler.set_epoch(loader.sampler.epoch + 1)
            iterator = iter(loader)
            inputs, _, _ = next(iterator)
        count += inputs.shape[0]
    elapsed = time.perf_counter() - begin
    del iterator, loader
    return count / elapsed, first, count


def model_clips_per_second(batch: int, steps: int) -> float:
    """Clips/s consumed by training steps of the paper configuration (F=243, C=512, depth 8)."""
    from common.model.config import apply_preset
    from common.model.metaformer import build_model

    config = apply_preset("default", {"num_frames": 243, "embed_dim": 512, "depth": 8})
    model = build_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = torch.randn(batch, 243, 17, 2)
    targets = torch.randn(batch, 243, 17, 3)

    def step():
        optimizer.zero_grad()
        loss = (model(inputs) - targets).norm(dim=-1).mean()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    begin = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - begin)


def main(argv=None) -> None:
    args = parse_args(argv)
    data_dir = Path(args.data_dir)
    start = time.perf_counter()
    dataset = load_dataset("h36m", data_dir / "data_3d_h36m.npz")
    keypoints = load_keypoints(data_dir / f"data_2d_h36m_{args.keypoints}.npz", dataset)
    subjects = [s for s in dataset.train_subjects if s in keypoints.positions]
    if not subjects:
        raise UserError(f"{data_dir}: none of the training subjects {', '.join(dataset.train_subjects)} is present")
    sequences = build_sequences(dataset, keypoints, subjects)
    frames_total = sum(len(s) for s in sequences)
    print(f"data: {len(sequences)} sequences, {frames_total} frames, subjects {','.join(subjects)}; "
          f"loaded in {time.perf_counter() - start:.1f} s; torch threads {torch.get_num_threads()}")  # fmt: skip
    left, right = list(keypoints.kps_left), list(keypoints.kps_right)
    joints_left, joints_right = dataset.skeleton.joints_left(), dataset.skeleton.joints_right()
    results = {}
    print(f"{'F':>5} {'workers':>7} {'clips':>8} {'clips/s':>10} {'frames/s':>11} {'first batch s':>14}")
    for frames in args.frames:
        clips = TrainClips(sequences, frames, None, True, left, right, joints_left, joints_right)
        for workers in args.workers:
            rate, first, _ = loader_clips_per_second(clips, args.batch, workers, args.batches)
            results[(frames, workers)] = rate
            print(f"{frames:>5} {workers:>7} {len(clips):>8} {rate:>10.0f} {rate * frames:>11.0f} {first:>14.2f}")
    if args.no_model:
        return
    model_rate = model_clips_per_second(args.model_batch, args.model_steps)
    print(f"paper model (F=243, C=512, depth 8, default preset) training step: {model_rate:.2f} clips/s "
          f"(batch {args.model_batch})")  # fmt: skip
    for (frames, workers), rate in results.items():
        if frames == 243:
            verdict = "OK" if rate >= 20 * model_rate else "BELOW GOAL"
            ratio = rate / model_rate
            print(f"loader F=243 workers={workers}: {ratio:.0f}x the model's clips/s (goal >= 20x): {verdict}")


if __name__ == "__main__":
    run_cli(main)
