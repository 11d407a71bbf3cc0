"""Matched-budget baseline: VideoPose3D's dilated temporal convolutional network (Pavllo et al., CVPR 2019), trained
and scored side by side with this project's model on the same data and by the same protocol code.

This is an own re-implementation for comparison, written from the paper's description (no VideoPose3D code). It
reproduces the single-frame-target model and recipe:

- the network: 2D poses (J x 2 channels) -> expand conv (width 3, no bias) -> BN, ReLU, dropout; then one residual
  block per further filter width: dilated conv (width w, dilation = product of the widths before it), BN, ReLU,
  dropout, 1x1 conv, BN, ReLU, dropout, plus the input sliced to the valid length; a final 1x1 conv to J x 3. Filter
  widths 3,3,3 give a receptive field of 27 frames; 128 channels give about 152 k parameters.
- training: every training frame is a target; its sample is the 27-frame 2D window centred on it (sequences
  edge-padded), and each epoch holds every frame twice, as it is and mirrored (flip augmentation), in random order;
  batches of 1,024 targets; Adam (amsgrad), lr 1e-3, x0.95 per epoch; BN momentum decayed from 0.1 towards 0.001
  over ``--epochs``; MPJPE on the root-relative camera-space 3D. Training uses VideoPose3D's "optimized"
  single-frame form (strided convolutions over the 27 frames: the same weights, the same output, less work);
  evaluation runs the dilated form over whole sequences edge-padded by 13 frames.
- data and scoring: `run.py`'s own loaders (``-d/-k/--data-3d/-str/-ste``) and protocol code (Protocol #1 MPJPE,
  #2 P-MPJPE per action group, flip test-time augmentation, every frame counted once).

    python benchmarks/tcn_baseline.py --data-3d ../shared/data/h36m_train/data_3d_h36m.npz --time-budget 20 \\
        --threads 1 --output tcn.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from common.cli import run_arguments, run_evaluation  # noqa: E402
from common.cli.run_data import load_run_data  # noqa: E402
from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_write_json  # noqa: E402
from common.evaluation import metrics, protocols  # noqa: E402
from common.geometry.skeleton import flip_poses  # noqa: E402

INITIAL_BN_MOMENTUM, FINAL_BN_MOMENTUM = 0.1, 0.001


class TemporalConvNet(nn.Module):
    """``(B, T, J, 2) -> (B, T - receptive_field + 1, J, 3)`` with dilated convolutions; ``strided=True`` (T must
    equal the receptive field) computes the same single output frame as VideoPose3D's optimized training model."""

    def __init__(self, joints: int = 17, channels: int = 128, filter_widths=(3, 3, 3), dropout: float = 0.25):
        super().__init__()
        if any(w % 2 == 0 or w < 1 for w in filter_widths):
            raise UserError(f"--filter-widths: expected odd widths, got {filter_widths}")
        self.filter_widths = tuple(filter_widths)
        self.expand = nn.Conv1d(joints * 2, channels, self.filter_widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=INITIAL_BN_MOMENTUM)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, w, bias=False) for w in self.filter_widths[1:])
        self.convs_bn = nn.ModuleList(nn.BatchNorm1d(channels, momentum=INITIAL_BN_MOMENTUM) for _ in self.convs)
        self.pointwise = nn.ModuleList(nn.Conv1d(channels, channels, 1, bias=False) for _ in self.convs)
        self.pointwise_bn = nn.ModuleList(nn.BatchNorm1d(channels, momentum=INITIAL_BN_MOMENTUM) for _ in self.convs)
        self.shrink = nn.Conv1d(channels, joints * 3, 1)
        self.drop = nn.Dropout(dropout)

    @property
    def receptive_field(self) -> int:
        return int(np.prod(self.filter_widths))

    def set_bn_momentum(self, momentum: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.momentum = momentum

    def forward(self, poses_2d: torch.Tensor, strided: bool = False) -> torch.Tensor:
        if strided:
            return self._forward_strided(poses_2d)
        batch, frames, joints = poses_2d.shape[:3]
        x = poses_2d.reshape(batch, frames, joints * 2).transpose(1, 2)
        x = self.drop(torch.relu(self.expand_bn(self.expand(x))))
        dilation = self.filter_widths[0]
        for conv, conv_bn, pointwise, pointwise_bn in zip(self.convs, self.convs_bn, self.pointwise, self.pointwise_bn):
            width = conv.kernel_size[0]
            cut = (width - 1) * dilation // 2
            residual = x[:, :, cut:x.shape[2] - cut]
            x = self.drop(torch.relu(conv_bn(nn.functional.conv1d(x, conv.weight, dilation=dilation))))
            x = residual + self.drop(torch.relu(pointwise_bn(pointwise(x))))
            dilation *= width
        return self.shrink(x).transpose(1, 2).reshape(batch, -1, joints, 3)

    def _forward_strided(self, poses_2d: torch.Tensor) -> torch.Tensor:
        """The centre frame of exactly ``receptive_field`` frames: every convolution of width w at stride w (only the
        frames the output needs), channels last, as one matrix product over groups of w frames (the same weights and
        output as conv1d; measured about 2x faster than conv1d for a training step on one CPU thread)."""
        batch, frames, joints = poses_2d.shape[:3]
        if frames != self.receptive_field:
            raise ValueError(f"strided: expected {self.receptive_field} frames, got {frames}")
        x = poses_2d.reshape(batch, frames, joints * 2)
        x = self.drop(torch.relu(_norm_last(self.expand_bn, _grouped(x, self.expand.weight))))
        for conv, conv_bn, pointwise, pointwise_bn in zip(self.convs, self.convs_bn, self.pointwise, self.pointwise_bn):
            width = conv.kernel_size[0]
            residual = x[:, width // 2::width]  # the centre frame of each group
            x = self.drop(torch.relu(_norm_last(conv_bn, _grouped(x, conv.weight))))
            x = residual + self.drop(torch.relu(_norm_last(pointwise_bn, _grouped(x, pointwise.weight))))
        return _grouped(x, self.shrink.weight, self.shrink.bias).reshape(batch, -1, joints, 3)


def _grouped(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv1d with ``weight (out, in, w)`` at stride w of channels-last ``x (B, T, in)`` -> ``(B, T // w, out)``."""
    out, inp, width = weight.shape
    flat = weight.permute(0, 2, 1).reshape(out, width * inp)
    return nn.functional.linear(x.reshape(x.shape[0], x.shape[1] // width, width * inp), flat, bias)


def _norm_last(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over channels-last ``(B, T, C)`` (the statistics of ``(B, C, T)``)."""
    return norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class WholeSequence(nn.Module):
    """``(B, T, J, 2) -> (B, T, J, 3)``: the TCN over the sequence edge-padded by half its receptive field at both
    ends, so that frame t is predicted from the window of frames t-13..t+13 (clamped to the sequence)."""

    def __init__(self, tcn: TemporalConvNet):
        super().__init__()
        self.tcn = tcn

    def forward(self, poses_2d: torch.Tensor) -> torch.Tensor:
        pad = self.tcn.receptive_field // 2
        frames = torch.arange(-pad, poses_2d.shape[1] + pad, device=poses_2d.device).clamp(0, poses_2d.shape[1] - 1)
        return self.tcn(poses_2d[:, frames])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (run.py's flags and loaders)")
    data.add_argument("-d", "--dataset", default="h36m")
    data.add_argument("-k", "--keypoints", default="gt_projected", help="2D input (default: projected ground truth)")
    data.add_argument("--data-dir", default=None, help="folder of data_3d_<d>.npz / data_2d_<d>_<k>.npz")
    data.add_argument("--data-3d", default=None, help="explicit 3D file")
    data.add_argument("-str", "--subjects-train", default="S1,S5,S6,S7,S8")
    data.add_argument("-ste", "--subjects-test", default="S9")
    data.add_argument("--eval-actions", default=None, metavar="LIST",
                      help="evaluate only these actions (prefix match, comma separated; default: all, the protocol)")
    model = parser.add_argument_group("model and recipe (VideoPose3D's defaults except the width)")
    model.add_argument("--channels", type=int, default=128, help="conv channels (128: about 152 k parameters)")
    model.add_argument("--filter-widths", default="3,3,3", help="receptive field = their product")
    model.add_argument("--dropout", type=float, default=0.25)
    model.add_argument("--batch-size", type=int, default=1024, help="targets (frames) per step")
    model.add_argument("--lr", type=float, default=1e-3)
    model.add_argument("--lr-decay", type=float, default=0.95, help="per epoch")
    model.add_argument("--epochs", type=int, default=60, help="at most this many epochs; also the BN momentum schedule")
    model.add_argument("--no-flip", action="store_true", help="no flip augmentation in training")
    model.add_argument("-no-tta", "--no-test-time-augmentation", action="store_true", help="no flip TTA")
    run = parser.add_argument_group("run")
    run.add_argument("--time-budget", type=float, default=0.0, metavar="MIN",
                     help="stop training at the first step past MIN minutes (0: no budget)")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--output", default=None, metavar="FILE.json", help="write the report here")
    args = parser.parse_args(argv)
    try:
        args.filter_widths = tuple(int(w) for w in args.filter_widths.split(","))
    except ValueError:
        raise UserError(f"--filter-widths: expected integers separated by commas, got {args.filter_widths}") from None
    for flag, value in (("--channels", args.channels), ("--batch-size", args.batch_size), ("--epochs", args.epochs),
                        ("--threads", args.threads or 1)):
        if value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    return args


def load_data(args, receptive_field: int):
    """`run.py`'s RunData and its parsed flags, for the same ``-d/-k/--data-3d/-str/-ste`` as a run.py command."""
    argv = ["-d", args.dataset, "-k", args.keypoints, "-str", args.subjects_train, "-ste", args.subjects_test,
            "-f", str(receptive_field), "--seed", str(args.seed), "--nolog", "--no-progress"]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["--data-3d", args.data_3d] if args.data_3d else []
    argv += ["-no-tta"] if args.no_test_time_augmentation else []
    run_args = run_arguments.parse_args(argv)
    data = load_run_data(run_args, print)
    if args.eval_actions:
        wanted = run_arguments.split_list(args.eval_actions)
        data.test = [seq for seq in data.test if any(seq.action.startswith(w) for w in wanted)]
        if not data.test:
            raise UserError(f"--eval-actions {args.eval_actions}: no test sequence of {args.subjects_test} matches")
    return run_args, data


def training_arrays(sequences, pad: int):
    """Edge-padded 2D of all sequences concatenated, the index of every target frame in it, and the 3D targets."""
    inputs, centres, start = [], [], 0
    for seq in sequences:
        inputs.append(np.pad(seq.poses_2d, ((pad, pad), (0, 0), (0, 0)), mode="edge"))
        centres.append(start + pad + np.arange(len(seq)))
        start += len(seq) + 2 * pad
    targets = np.concatenate([seq.poses_3d for seq in sequences]).astype(np.float32)
    return np.concatenate(inputs).astype(np.float32), np.concatenate(centres), targets


def train(args, model: TemporalConvNet, data, settings) -> dict:
    """VideoPose3D's single-frame-target training until ``--epochs`` or the time budget; returns the statistics."""
    pad = model.receptive_field // 2
    inputs, centres, targets = training_arrays(data.train, pad)
    offsets = np.arange(-pad, pad + 1)
    copies = 1 if args.no_flip else 2  # every frame as it is, and mirrored
    samples = copies * len(targets)
    steps_per_epoch = math.ceil(samples / args.batch_size)
    print(f"training: {len(data.train)} sequences, {len(targets)} target frames, {samples} samples per epoch "
          f"({'with' if copies == 2 else 'without'} flips), {steps_per_epoch} steps of {args.batch_size}")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, amsgrad=True)
    rng = np.random.default_rng(args.seed)
    budget = args.time_budget * 60
    steps = seen = 0
    loss_sum, loss_frames, stopped = 0.0, 0, False
    started = last_print = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(samples)
        epoch_loss, epoch_frames = 0.0, 0
        for begin in range(0, samples, args.batch_size):
            index = order[begin:begin + args.batch_size]
            frame, flip = index % len(targets), index >= len(targets)
            batch_2d, batch_3d = inputs[centres[frame][:, None] + offsets], targets[frame]
            if flip.any():
                batch_2d[flip] = flip_poses(batch_2d[flip], settings.kps_left, settings.kps_right)
                batch_3d[flip] = flip_poses(batch_3d[flip], settings.joints_left, settings.joints_right)
            predicted = model(torch.from_numpy(batch_2d), strided=True)[:, 0]
            loss = metrics.mpjpe(predicted, torch.from_numpy(batch_3d))
            if not torch.isfinite(loss):
                raise UserError(f"training diverged at step {steps + 1} (loss {loss.item()}); lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps, seen = steps + 1, seen + len(index)
            epoch_loss, epoch_frames = epoch_loss + loss.item() * len(index), epoch_frames + len(index)
            now = time.perf_counter()
            if now - last_print >= 60:
                print(f"  step {steps}: train MPJPE {epoch_loss / epoch_frames * 1000:.1f} mm, "
                      f"{seen / (now - started):.0f} targets/s, {(now - started) / 60:.1f} min")
                last_print = now
            if budget > 0 and now - started >= budget:
                stopped = True
                break
        loss_sum, loss_frames = loss_sum + epoch_loss, loss_frames + epoch_frames
        elapsed = time.perf_counter() - started
        lr = optimizer.param_groups[0]["lr"]
        print(f"[epoch {epoch + 1}{' partial' if stopped else ''}] lr {lr:.3g} train MPJPE "
              f"{epoch_loss / epoch_frames * 1000:.1f} mm | {seen / elapsed:.0f} targets/s, {elapsed / 60:.2f} min")
        if stopped:
            print(f"time budget of {args.time_budget:g} min reached after {steps} steps: stopping")
            break
        for group in optimizer.param_groups:
            group["lr"] *= args.lr_decay
        ratio = INITIAL_BN_MOMENTUM / FINAL_BN_MOMENTUM
        model.set_bn_momentum(INITIAL_BN_MOMENTUM * math.exp(-(epoch + 1) / args.epochs * math.log(ratio)))
    seconds = time.perf_counter() - started
    return {"steps": steps, "target_frames": seen, "epochs": seen / samples, "minutes": seconds / 60,
            "target_frames_per_second": seen / seconds, "stopped_by_budget": stopped,
            "last_epoch_train_mpjpe_mm": epoch_loss / max(epoch_frames, 1) * 1000,
            "train_mpjpe_mm": loss_sum / max(loss_frames, 1) * 1000}


def evaluate(model: TemporalConvNet, run_args, data, settings, epochs: float):
    """The project's protocol with whole-sequence prediction: each sequence is one window of its own length."""
    predict = protocols.model_predict_fn(WholeSequence(model), torch.device("cpu"), "the TCN baseline")
    results = []
    for seq in data.test:
        whole = dataclasses.replace(settings, num_frames=len(seq), batch_windows=1)
        results += protocols.evaluate_sequences(predict, [seq], whole, data.protocol, full=True,
                                                joint_mask=run_evaluation.eval_joint_mask(data), progress=False)
    summary = protocols.summarize(results, data.protocol)
    header = run_evaluation.report_header(run_args, SimpleNamespace(num_frames=model.receptive_field), data,
                                          Path("tcn_baseline.py"), f"{epochs:.2f}")
    header["checkpoint"] = "none (the TCN trained by benchmarks/tcn_baseline.py in this process)"
    header["frames per window"] = (f"whole sequence (receptive field {model.receptive_field}, edge-padded by "
                                   f"{model.receptive_field // 2} frames at both ends)")
    return summary, header


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_args, data = load_data(args, int(np.prod(args.filter_widths)))
    torch.manual_seed(args.seed)
    model = TemporalConvNet(data.dataset.skeleton.num_joints(), args.channels, args.filter_widths, args.dropout)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"TCN: receptive field {model.receptive_field} (filter widths {','.join(map(str, args.filter_widths))}), "
          f"{args.channels} channels, {parameters:,} parameters; CPU threads: {torch.get_num_threads()}")
    settings = run_evaluation.predict_settings(run_args, SimpleNamespace(num_frames=model.receptive_field), data)
    stats = train(args, model, data, settings)
    started = time.perf_counter()
    summary, header = evaluate(model, run_args, data, settings, stats["epochs"])
    print(protocols.format_summary(summary, header))
    average = summary.average
    p2 = f", P-MPJPE (P2) {average['p_mpjpe'] * 1000:.1f} mm" if "p_mpjpe" in average else ""
    print(f"final: MPJPE (P1) {average['mpjpe'] * 1000:.1f} mm{p2} after {stats['minutes']:.2f} min of training "
          f"({stats['steps']} steps, {stats['target_frames_per_second']:.0f} targets/s); evaluation "
          f"{time.perf_counter() - started:.1f} s")
    command = shlex.join(["python", "benchmarks/tcn_baseline.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"script": "benchmarks/tcn_baseline.py", "command": command, "parameters": parameters,
              "receptive_field": model.receptive_field, "channels": args.channels, "batch_size": args.batch_size,
              "threads": torch.get_num_threads(), "seed": args.seed, "time_budget_minutes": args.time_budget, **stats,
              "mpjpe_mm": average["mpjpe"] * 1000, "p_mpjpe_mm": average.get("p_mpjpe", float("nan")) * 1000,
              "evaluation": protocols.summary_to_dict(summary, header)}
    if args.output:
        atomic_write_json(args.output, report)
        print(f"report written to {args.output}")
    return report


if __name__ == "__main__":
    run_cli(main)
