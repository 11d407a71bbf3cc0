"""Model benchmark: inference / training-step throughput, peak memory and achieved GFLOP/s of the model presets.

Prints, for every configuration (``paper``: F=243, C=512, depth 8 as MixSTE; ``small``: F=27, C=64, depth 4) and
every preset (``default`` fc+pool, ``poolformer`` pool+pool, ``mixste`` attention+attention):

- inference throughput (frames/s = batch * F / time of one forward pass, ``torch.inference_mode``);
- training-step throughput (forward + backward + AdamW step on an MPJPE loss);
- peak resident memory of a fresh child process running only that measurement, and its rise above the process
  baseline (model and optimiser included);
- achieved GFLOP/s of the best call (analytic MACs of `common.model_cost`, x2; a training step counts 3x the
  forward FLOPs) and its fraction of a matmul ceiling measured here (best fp32 GFLOP/s of a large square matmul
  and of the model's own MLP matmul shape, same thread count, measured before and after the models, best of all;
  the table's %ceil uses the "before" ceiling, the summary lines the final one);
- the speed ratio of every preset to ``mixste`` (from the best-of times, which are the least disturbed by other load
  on the machine; the ratio of medians is printed too).

Each (config, preset, mode) runs in its own spawned process so peak memory is not polluted by earlier runs.
The numbers are wall-clock and sensitive to other load on the machine: run it more than once.

Usage: python benchmarks/bench_model.py [--configs paper,small] [--presets default,poolformer,mixste]
       [--repeats 5] [--threads N] [--batch 1] [--compile] [--no-train]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from common.errors import UserError, run_cli  # noqa: E402
from common.model import PRESETS, apply_preset, build_model  # noqa: E402
from common.model_cost import count_macs, count_parameters  # noqa: E402

CEILING_REPEATS = 10
CONFIGS = {
    "paper": {"num_frames": 243, "embed_dim": 512, "depth": 8},
    "small": {"num_frames": 27, "embed_dim": 64, "depth": 4},
}


def matmul_ceiling(threads: int, repeats: int, shapes: list[tuple[int, int, int]]) -> dict[str, float]:
    """Best fp32 GFLOP/s of ``(m x k) @ (k x n)`` for every shape, with ``threads`` threads."""
    torch.set_num_threads(threads)
    results = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(max(repeats, 3)):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        results[f"{m}x{k}x{n}"] = 2 * m * k * n / best / 1e9
    return results


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _measure(job: dict, queue) -> None:
    """Child process: time one (config, preset, mode) and report seconds per call and memory."""
    try:
        torch.set_num_threads(job["threads"])
        torch.manual_seed(0)
        baseline = _max_rss_mib()
        config = apply_preset(job["preset"], job["overrides"])
        model = build_model(config)
        inputs = torch.randn(job["batch"], config.num_frames, config.num_joints, config.in_chans)
        targets = torch.randn(job["batch"], config.num_frames, config.num_joints, config.out_chans)
        forward = torch.compile(model) if job["compile"] else model
        if job["mode"] == "inference":
            model.eval()

            def step() -> None:
                with torch.inference_mode():
                    forward(inputs)
        else:
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

            def step() -> None:
                optimizer.zero_grad(set_to_none=True)
                loss = torch.linalg.norm(forward(inputs) - targets, dim=-1).mean()
                loss.backward()
                optimizer.step()

        for _ in range(job["warmup"]):
            step()
        times = []
        for _ in range(job["repeats"]):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        peak = _max_rss_mib()
        queue.put({"times": times, "peak_mib": peak, "rise_mib": peak - baseline, "params": count_parameters(model)})
    except Exception as error:  # report to the parent, which prints it
        queue.put({"error": f"{type(error).__name__}: {error}"})


def run_job(job: dict) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(job, queue))
    process.start()
    result = queue.get()
    process.join()
    if "error" in result:
        raise RuntimeError(f"{job['config']}/{job['preset']}/{job['mode']}: {result['error']}")
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="paper,small", help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--presets", default="mixste,default,poolformer", help=f"comma list of {', '.join(PRESETS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median and best shown)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=1, help="clips per call")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (inductor) before timing")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step measurements")
    args = parser.parse_args()
    for name, choices, flag in ((args.configs, CONFIGS, "--configs"), (args.presets, PRESETS, "--presets")):
        unknown = [item for item in name.split(",") if item not in choices]
        if unknown:
            raise UserError(f"{flag}: unknown {', '.join(unknown)} (choose from {', '.join(choices)})")
    for flag, value in (("--repeats", args.repeats), ("--threads", args.threads), ("--batch", args.batch)):
        if value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    if args.warmup < 0:
        raise UserError(f"--warmup: expected a non-negative integer, got {args.warmup}")
    return args


def main() -> None:
    args = parse_args()
    configs, presets = args.configs.split(","), args.presets.split(",")
    modes = ["inference"] if args.no_train else ["inference", "train"]
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, compile={args.compile}, "
          f"repeats {args.repeats} (+{args.warmup} warm-up)")
    mlp_shapes = [(CONFIGS[c]["num_frames"] * 17, CONFIGS[c]["embed_dim"], 2 * CONFIGS[c]["embed_dim"])
                  for c in configs]
    ceiling_shapes = [(2048, 2048, 2048), *mlp_shapes]
    ceilings = matmul_ceiling(args.threads, CEILING_REPEATS, ceiling_shapes)
    print("matmul ceiling before (fp32 GFLOP/s): " + ", ".join(f"{k}: {v:.1f}" for k, v in ceilings.items()))
    header = f"{'config':6} {'preset':10} {'mode':9} {'frames/s':>10} {'best f/s':>10} {'ms/call':>9} " \
             f"{'GFLOP/s':>8} {'%ceil':>6} {'peakMiB':>8} {'+MiB':>7} {'x mixste':>8}"
    print(header)
    summaries = []
    for config_name in configs:
        results = {}
        for preset in presets:
            overrides = dict(CONFIGS[config_name])
            config = apply_preset(preset, overrides)
            flops = 2 * count_macs(config)["per_clip"] * args.batch
            for mode in modes:
                job = {"config": config_name, "preset": preset, "mode": mode, "overrides": overrides,
                       "threads": args.threads, "batch": args.batch, "compile": args.compile,
                       "repeats": args.repeats, "warmup": args.warmup}
                result = run_job(job)
                median = statistics.median(result["times"])
                frames = args.batch * config.num_frames
                work = flops * (3 if mode == "train" else 1)
                best = min(result["times"])
                results[(preset, mode)] = (median, best, work)
                ratio = ""
                if ("mixste", mode) in results and preset != "mixste":
                    ratio = f"{results[('mixste', mode)][1] / best:.2f}"
                gflops = work / best / 1e9  # best-of, like the matmul ceiling
                percent = 100 * gflops / max(ceilings.values())
                print(f"{config_name:6} {preset:10} {mode:9} {frames / median:10.1f} "
                      f"{frames / min(result['times']):10.1f} {median * 1e3:9.1f} {gflops:8.1f} "
                      f"{percent:6.1f} {result['peak_mib']:8.0f} {result['rise_mib']:7.0f} {ratio:>8}",
                      flush=True)
        summaries.append((config_name, results))
    after = matmul_ceiling(args.threads, CEILING_REPEATS, ceiling_shapes)
    print("matmul ceiling after (fp32 GFLOP/s): " + ", ".join(f"{k}: {v:.1f}" for k, v in after.items()))
    ceiling = max(*ceilings.values(), *after.values())
    print(f"matmul ceiling (best of all): {ceiling:.1f} GFLOP/s")
    for config_name, results in summaries:
        for (preset, mode), (median, best, work) in results.items():
            print(f"{config_name}: {preset} {mode}: {work / best / 1e9:.1f} GFLOP/s = "
                  f"{100 * work / best / 1e9 / ceiling:.1f}% of the matmul ceiling")
        if "mixste" in presets:
            for preset in presets:
                if preset == "mixste":
                    continue
                ratios = ", ".join(
                    f"{mode} {results[('mixste', mode)][1] / results[(preset, mode)][1]:.2f}x (median "
                    f"{results[('mixste', mode)][0] / results[(preset, mode)][0]:.2f}x)"
                    for mode in modes
                )
                print(f"{config_name}: {preset} / mixste throughput, best-of: {ratios}")


if __name__ == "__main__":
    run_cli(main)
