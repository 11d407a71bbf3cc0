"""Accuracy of live (streaming) lifting on Human3.6M test sequences, per delay (issue 18).

`run.py --evaluate` predicts a sequence in back-to-back windows of F frames, so most frames see some future and, for a
causal model, the first frames of each window see almost no past: not what a live stream gets. Here every scored
frame t is predicted from its own window, as `common.evaluation.streaming.StreamingLifter` predicts it when the
sequence is pushed frame by frame: frames ``t + delay - F + 1 .. t + delay`` clamped into ``[0, T - 1]`` (the first
frame repeated before the start, the newest pose repeated past the end as ``flush`` does), the model's output at
window position ``F - 1 - delay``. The windows are batched (`streaming.predict_sliding`, ``--batch`` windows per
forward) and the prediction is the project's own (`protocols.predict_poses`: raw output, flip TTA if asked).

The scored frames (every ``--every``-th frame of each sequence: 0, N, 2N, ...) are scored with `run.py`'s Human3.6M
protocol (`protocols.sequence_errors` per sequence, `protocols.summarize`: frame-weighted within an action group, mean
over groups). With ``--every`` above 1 the velocity error (MPJVE) is not reported (neighbouring scored frames are N
apart). Per delay it prints the protocol table, P1/P2 and the latency the delay costs (delay / fps).

    python benchmarks/streaming_h36m.py --data-3d ../shared/data/h36m_train/data_3d_h36m.npz -k gt_projected \\
        --checkpoint CHECKPOINT --delays 0 5 13 --every 9 --output streaming.json
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.plausibility_h36m import add_data_flags, load_model_and_data  # noqa: E402
from common.cli import run_evaluation  # noqa: E402
from common.cli.compute import apply_thread_policy, resolve_device  # noqa: E402
from common.cli.run_arguments import positive_int  # noqa: E402
from common.core.errors import run_cli  # noqa: E402
from common.core.files import atomic_write_json  # noqa: E402
from common.evaluation import protocols  # noqa: E402
from common.evaluation.streaming import check_delay, predict_sliding  # noqa: E402
from common.model import pretrained  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_flags(parser)
    parser.add_argument("--checkpoint", default=pretrained.DEFAULT_MODEL, metavar="FILE_OR_NAME",
                        help="a shipped model's name or a run.py / official MixSTE checkpoint (default: %(default)s)")
    parser.add_argument("--delays", nargs="+", type=int, default=[0], metavar="D",
                        help="frames between the newest pose and the scored one, each in [0, F // 2] (default: 0)")
    parser.add_argument("--every", type=positive_int, default=1, metavar="N",
                        help="score every N-th frame of each sequence (frames 0, N, 2N, ...; default: every frame)")
    parser.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=False,
                        help="flip test-time augmentation (default: off, as inference/live.py)")
    parser.add_argument("--batch", type=positive_int, default=256, metavar="N", help="windows per forward")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: by model)")
    parser.add_argument("--output", default=None, metavar="FILE.json", help="write the report here")
    args = parser.parse_args(argv)
    args.no_test_time_augmentation = not args.flip_tta  # the name `load_data` (run.py's -no-tta) reads
    return args


def stream_prediction(predict, poses_2d: np.ndarray, settings, delay: int, every: int):
    """``(scored frames (n,), their 3D (n, J', 3))``: frames ``0, every, 2 * every, ...`` of a sequence, each what a
    `StreamingLifter` with ``delay`` returns for it (its own window, batched ``settings.batch_windows`` per forward)."""
    scored = np.arange(0, len(poses_2d), every)
    return scored, predict_sliding(predict, poses_2d, settings, delay, settings.batch_windows, frames=scored)


def streaming_results(predict, sequences, settings, delay: int, every: int, protocol: str,
                      joint_mask) -> list[protocols.SequenceResult]:
    """Per-sequence errors (metres) of the frames ``0, every, 2 * every, ...`` of each sequence, each predicted from
    its own streaming window at ``delay``; MPJVE only when every frame is scored."""
    results = []
    for seq in sequences:
        if seq.poses_3d is None:
            continue
        scored, predicted = stream_prediction(predict, seq.poses_2d, settings, delay, every)
        values = protocols.sequence_errors(predicted, np.asarray(seq.poses_3d)[scored], protocol, True, joint_mask)
        if every > 1:
            values["mpjve"] = None
        results.append(protocols.SequenceResult(seq.subject, seq.action, int(seq.camera_index), len(scored),
                                                **values))
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    path, run_args, data, loaded = load_model_and_data(args)
    num_frames, fps = loaded.config.num_frames, float(data.dataset.fps)
    delays = [check_delay(delay, num_frames, "--delays") for delay in dict.fromkeys(args.delays)]
    device = resolve_device(args.device)
    apply_thread_policy(args.threads, loaded.config, device, print)
    predict = protocols.model_predict_fn(loaded.model.to(device), device, path)
    settings = dataclasses.replace(run_evaluation.predict_settings(run_args, loaded.config, data), counting="once",
                                   batch_windows=args.batch)
    header = run_evaluation.report_header(run_args, loaded.config, data, path, loaded.stored.get("epoch", "?"))
    scoring = "every frame scored" if args.every == 1 else (
        f"1 frame in {args.every} scored (frames 0, {args.every}, {2 * args.every}, ... of each sequence; subsampled)")
    header["counting"] = f"streaming (each frame predicted from its own window, edge-padded as the stream), {scoring}"
    header["causal model"] = "yes" if loaded.config.causal else "no"
    mask = run_evaluation.eval_joint_mask(data)
    report = {"script": "benchmarks/streaming_h36m.py",
              "command": shlex.join(["python", "benchmarks/streaming_h36m.py",
                                     *(sys.argv[1:] if argv is None else argv)]),
              **header, "every": args.every, "fps": fps, "delays": {}}
    rows = []
    for delay in delays:
        results = streaming_results(predict, data.test, settings, delay, args.every, data.protocol, mask)
        summary = protocols.summarize(results, data.protocol)
        latency_ms = delay / fps * 1000
        delay_header = {**header, "delay": f"{delay} frames (window position {num_frames - 1 - delay} of "
                                           f"{num_frames}; {latency_ms:.0f} ms at {fps:g} fps)"}
        print("\n" + protocols.format_summary(summary, delay_header))
        average = summary.average
        rows.append(f"{delay:>6} {latency_ms:>12.0f} {average['mpjpe'] * 1000:>10.1f} "
                    f"{average['p_mpjpe'] * 1000:>10.1f} {average['frames']:>9}")
        entry = protocols.summary_to_dict(summary, delay_header)
        report["delays"][str(delay)] = {"delay_frames": delay, "latency_ms": latency_ms,
                                        **{k: v for k, v in entry.items() if k not in header}}
    tta = "on" if args.flip_tta else "off"
    print(f"\nstreaming summary ({'causal' if loaded.config.causal else 'non-causal'} model of {num_frames} frames, "
          f"flip TTA {tta}, raw prediction, mean over action groups, {scoring}):")
    print(f"{'delay':>6} {'latency ms':>12} {'P1 mm':>10} {'P2 mm':>10} {'frames':>9}\n" + "\n".join(rows))
    print("block evaluation (back-to-back windows of F frames, every frame once; not recomputed here): "
          f"what `python run.py --evaluate {path}` prints with the same data flags")
    if args.output:
        atomic_write_json(args.output, report)
        print(f"report written to {args.output}")
    return report


if __name__ == "__main__":
    run_cli(main)
