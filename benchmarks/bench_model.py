"""Model benchmark: inference / training-step throughput, peak memory and achieved GFLOP/s of the model presets.

Prints, for every configuration (``paper``: F=243, C=512, depth 8 as MixSTE; ``small``: F=27, C=64, depth 4) and
every preset (``default`` fc+pool, ``poolformer`` pool+pool, ``mixste`` attention+attention):

- inference throughput (frames/s = batch * F / time of one forward pass, ``torch.inference_mode``);
- training-step throughput (forward + backward + AdamW step on an MPJPE loss; stochastic depth `--drop-path`, by
  default a new model's);
- peak resident memory (eager) of a fresh process running only that preset and mode, and its rise above the
  process baseline after ``import torch`` (model, activations and optimiser state included);
- achieved GFLOP/s of the best call (analytic MACs of `common.model.cost`, x2; a training step counts 3x the
  forward FLOPs) and its fraction of a matmul ceiling measured here (best fp32 GFLOP/s of a large square matmul
  and of the model's own MLP matmul shape, same thread count, measured before and after the models, best of all;
  the table's %ceil uses the "before" ceiling, the summary lines the final one);
- the speed ratio of every preset to ``mixste`` (from the best-of times, which are the least disturbed by other load
  on the machine), with the ratio of medians and the spread of the per-round ratios (each round times every preset
  back to back, so one round's ratio compares calls made under the same load; their range shows how far the
  machine's noise moves the ratio);
- with ``--profile``: where one call spends its time (``torch.profiler``, self CPU time per operator): the share in
  matrix products with the GFLOP/s achieved inside them, and the largest other operators. This is what bounds a
  preset's ratio to ``mixste``: the MAC ratio, corrected by how much time each spends outside matrix products;
- with ``--floor`` (inference): the time a call of each non-attention preset cannot go below, from the operators every
  block must run (the MLP's two matrix products, GELU, the LayerNorms), each timed alone as the block runs them, i.e.
  the call with token mixing, pooling and residual adds for free; and the largest ratio to ``mixste`` this allows.

Timing runs in one spawned process per (config, mode) that builds every preset and times them INTERLEAVED
(A, B, C, A, B, C, ...), so load from other processes hits all presets alike and the ratios stay meaningful on a
busy machine; peak memory is measured separately in one fresh process per (config, preset, mode), eager, two calls.
The numbers are wall-clock: run the script more than once. Every preset runs the model's one forward
(`PoseMetaFormer.forward`); ``--compile`` times it through ``torch.compile``.

Usage: python benchmarks/bench_model.py [--configs paper,small] [--presets mixste,default,poolformer]
       [--repeats 5] [--threads N] [--batch 1] [--compile] [--no-train] [--no-memory]
       [--drop-path 0.0] [--profile] [--floor]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.model.config import PRESETS, ModelConfig, apply_preset  # noqa: E402
from common.model.cost import count_macs  # noqa: E402
from common.model.metaformer import MetaFormerBlock, build_model  # noqa: E402
from common.model.mixers import TEMPORAL  # noqa: E402

CEILING_REPEATS = 10
# Operators that are matrix products (forward and backward; eager and torch.compile'd graphs).
MATMUL_OPS = {
    "aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm", "aten::matmul", "mkl::_mkl_linear",
    "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
}
CONFIGS = {
    "paper": {"num_frames": 243, "embed_dim": 512, "depth": 8},
    "small": {"num_frames": 27, "embed_dim": 64, "depth": 4},
}


def best_time(operation, repeats: int) -> float:
    """Best wall-clock time in seconds of ``operation()`` over ``max(repeats, 3)`` calls after one untimed call."""
    operation()
    best = float("inf")
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_ceiling(threads: int, repeats: int, shapes: list[tuple[int, int, int]]) -> dict[str, float]:
    """Best fp32 GFLOP/s of ``(m x k) @ (k x n)`` for every shape, with ``threads`` threads."""
    torch.set_num_threads(threads)
    results = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        results[f"{m}x{k}x{n}"] = 2 * m * k * n / best_time(lambda a=a, b=b: torch.mm(a, b), repeats) / 1e9
    return results


def ratio_stats(reference: list[float], times: list[float]) -> dict[str, float]:
    """Speed ratios ``reference / times`` of two presets timed in the same interleaved rounds: best-of, ratio of
    medians, and the median, lowest and highest of the per-round ratios."""
    rounds = sorted(ref / own for ref, own in zip(reference, times, strict=True))
    return {"best_of": min(reference) / min(times),
            "of_medians": statistics.median(reference) / statistics.median(times),
            "round_median": statistics.median(rounds), "round_low": rounds[0], "round_high": rounds[-1]}


def ratio_summary(reference: list[float], times: list[float]) -> str:
    """`ratio_stats` in words."""
    stats = ratio_stats(reference, times)
    return (f"{stats['best_of']:.2f}x (ratio of medians {stats['of_medians']:.2f}x, per round "
            f"{stats['round_median']:.2f}x, range {stats['round_low']:.2f}-{stats['round_high']:.2f}x over "
            f"{len(times)} rounds)")


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _make_step(config: ModelConfig, mode: str, batch: int, compile_model: bool):
    """A no-argument callable running one inference call or one training step of a new model of ``config``."""
    model = build_model(config)
    inputs = torch.randn(batch, config.num_frames, config.num_joints, config.in_chans)
    targets = torch.randn(batch, config.num_frames, config.num_joints, config.out_chans)
    forward = torch.compile(model) if compile_model else model
    if mode == "inference":
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

    return step


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ library prints start/stop probes and a GPU-count error there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_call(step, work_flop: float) -> dict:
    """Self CPU time of one call of ``step`` by operator: the share in matrix products (`MATMUL_OPS`), the GFLOP/s of
    ``work_flop`` over the matrix-product time, and the other operators by time (name -> seconds)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    seconds = {event.key: event.self_cpu_time_total / 1e6 for event in prof.key_averages()}
    total = sum(seconds.values())
    matmul = sum(time_s for name, time_s in seconds.items() if name in MATMUL_OPS)
    others = sorted(((name, time_s) for name, time_s in seconds.items() if name not in MATMUL_OPS),
                    key=lambda item: -item[1])
    return {"total_s": total, "matmul_share": matmul / total, "matmul_gflops": work_flop / matmul / 1e9,
            "others": others}


def floor_counts(config: ModelConfig) -> dict[str, int]:
    """How many times one forward call runs each operator the block spec requires of every preset: the MLP's two
    matrix products and GELU in each of the ``2 * depth`` blocks, and the LayerNorms (two per block, MixSTE's shared
    stream norm after every block when enabled, and the head's)."""
    blocks = 2 * config.depth
    stream_norms = blocks if config.shared_stream_norms else 0
    return {"mlp_products": 2 * blocks, "layer_norms": 2 * blocks + stream_norms + 1, "gelus": blocks}


def time_floor_operators(config: ModelConfig, batch: int, repeats: int) -> dict[str, float]:
    """Best time in seconds of one call of each required operator, alone, on ``(batch, F, J, C)`` activations, run
    exactly as `MetaFormerBlock.forward` runs them: the MLP's fc1 and fc2 (with their biases), its GELU and a
    LayerNorm. The two MLP products are reported as one ``mlp_product`` time (their mean)."""
    block = MetaFormerBlock(config, TEMPORAL, 0, 0.0).eval()
    x = torch.randn(batch, config.num_frames, config.num_joints, config.embed_dim)
    with torch.inference_mode():
        normed = block.norm2(x)
        hidden = block.mlp.fc1(normed)
        fc1 = best_time(lambda: block.mlp.fc1(normed), repeats)
        fc2 = best_time(lambda: block.mlp.fc2(hidden), repeats)
        return {
            "mlp_product": (fc1 + fc2) / 2,
            "layer_norm": best_time(lambda: block.norm2(x), repeats),
            "gelu": best_time(lambda: block.mlp.act(hidden), repeats),
        }


def floor_seconds(counts: dict[str, int], seconds: dict[str, float]) -> float:
    """The call time the required operators add up to (`floor_counts` x `time_floor_operators`)."""
    return (counts["mlp_products"] * seconds["mlp_product"] + counts["layer_norms"] * seconds["layer_norm"]
            + counts["gelus"] * seconds["gelu"])


def floor_report(counts: dict[str, int], seconds: dict[str, float], results: dict, preset: str) -> str:
    """One line: the floor's terms, its share of the preset's best call, and the largest ratio to mixste it allows."""
    floor = floor_seconds(counts, seconds)
    best = results[(preset, "inference")][1]
    line = (f"{counts['mlp_products']} MLP products x {seconds['mlp_product'] * 1e3:.2f} ms + "
            f"{counts['layer_norms']} LayerNorms x {seconds['layer_norm'] * 1e3:.2f} ms + "
            f"{counts['gelus']} GELUs x {seconds['gelu'] * 1e3:.2f} ms = {floor * 1e3:.1f} ms "
            f"({100 * floor / best:.1f}% of its best call, {best * 1e3:.1f} ms)")
    if ("mixste", "inference") in results:
        line += f"; mixste's best call / floor = at most {results[('mixste', 'inference')][1] / floor:.2f}x"
    return line


def _time_presets(job: dict, queue) -> None:
    """Child process: time every preset of one (config, mode), INTERLEAVED (preset A, B, C, A, B, C, ...) so that
    load from other processes on the machine hits all presets alike."""
    try:
        torch.set_num_threads(job["threads"])
        torch.manual_seed(0)
        steps = {}
        for preset in job["presets"]:
            steps[preset] = _make_step(apply_preset(preset, job["overrides"]), job["mode"], job["batch"],
                                       job["compile"])
            for _ in range(job["warmup"]):
                steps[preset]()
        times = {preset: [] for preset in job["presets"]}
        for _ in range(job["repeats"]):
            for preset, step in steps.items():
                start = time.perf_counter()
                step()
                times[preset].append(time.perf_counter() - start)
        profiles = {}
        if job["profile"]:
            for preset, step in steps.items():
                work = 2 * count_macs(apply_preset(preset, job["overrides"]))["per_clip"] * job["batch"]
                profiles[preset] = profile_call(step, work * (3 if job["mode"] == "train" else 1))
        floors = {}
        if job["floor"] and job["mode"] == "inference":
            seconds = time_floor_operators(apply_preset("default", job["overrides"]), job["batch"], job["repeats"])
            for preset in job["presets"]:
                config = apply_preset(preset, job["overrides"])
                if "attention" not in (config.spatial_mixer, config.temporal_mixer):
                    floors[preset] = {"counts": floor_counts(config), "seconds": seconds}
        queue.put({"times": times, "profiles": profiles, "floors": floors})
    except Exception as error:  # report to the parent, which raises it
        queue.put({"error": f"{type(error).__name__}: {error}"})


def _peak_memory(job: dict, queue) -> None:
    """Child process: peak resident memory of two eager calls of one preset, and its rise above the baseline."""
    try:
        torch.set_num_threads(job["threads"])
        baseline = _max_rss_mib()
        config = apply_preset(job["preset"], job["overrides"])
        step = _make_step(config, job["mode"], job["batch"], compile_model=False)
        step()
        step()
        peak = _max_rss_mib()
        queue.put({"peak_mib": peak, "rise_mib": peak - baseline})
    except Exception as error:
        queue.put({"error": f"{type(error).__name__}: {error}"})


def _memory_columns(memory: dict | None) -> str:
    if memory is None:  # --no-memory
        return f"{'-':>8} {'-':>7}"
    return f"{memory['peak_mib']:8.0f} {memory['rise_mib']:7.0f}"


def run_child(target, job: dict) -> dict:
    """Run ``target(job, queue)`` in a fresh spawned process and return what it reported."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(job, queue))
    process.start()
    try:
        result = queue.get()
    finally:
        process.join()
    if "error" in result:
        raise RuntimeError(f"{job}: {result['error']}")
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
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurements (one fresh process per preset and mode; faster)")
    parser.add_argument("--drop-path", type=float, default=ModelConfig.drop_path_rate,
                        help="stochastic depth rate of the timed models (default: that of a new model)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one call per preset and mode: time in matrix products vs other operators")
    parser.add_argument("--floor", action="store_true",
                        help="also time the operators every block needs (MLP products, LayerNorm, GELU) alone and "
                             "print the call time they add up to and the largest ratio to mixste it allows")
    args = parser.parse_args()
    for name, choices, flag in ((args.configs, CONFIGS, "--configs"), (args.presets, PRESETS, "--presets")):
        unknown = [item for item in name.split(",") if item not in choices]
        if unknown:
            raise UserError(f"{flag}: unknown {', '.join(unknown)} (choose from {', '.join(choices)})")
    for flag, value in (("--repeats", args.repeats), ("--threads", args.threads), ("--batch", args.batch)):
        if value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    if args.floor and all("attention" in (PRESETS[p]["spatial_mixer"], PRESETS[p]["temporal_mixer"])
                          for p in args.presets.split(",")):
        raise UserError("--floor: needs a preset without attention in --presets (the floor is of the pool models)")
    if not 0.0 <= args.drop_path < 1.0:
        raise UserError(f"--drop-path: expected a probability in [0, 1), got {args.drop_path}")
    if args.warmup < 0:
        raise UserError(f"--warmup: expected a non-negative integer, got {args.warmup}")
    return args


def measure_config(args, config_name: str, modes: list[str]) -> tuple[dict, dict, dict]:
    """Time (and unless --no-memory, measure the peak memory of) every preset and mode of one configuration.

    Returns ``results[(preset, mode)] = (median s, best s, FLOP per call, frames per call, memory, all times)`` and
    the ``--profile`` / ``--floor`` findings."""
    presets = args.presets.split(",")
    overrides = {**CONFIGS[config_name], "drop_path_rate": args.drop_path}
    results, profiles, floors = {}, {}, {}
    for mode in modes:
        job = {"overrides": overrides, "presets": presets, "mode": mode, "threads": args.threads,
               "batch": args.batch, "compile": args.compile, "repeats": args.repeats, "warmup": args.warmup,
               "profile": args.profile, "floor": args.floor}
        timed = run_child(_time_presets, job)
        profiles.update({(config_name, preset, mode): found for preset, found in timed["profiles"].items()})
        floors.update({(config_name, preset): found for preset, found in timed["floors"].items()})
        for preset in presets:
            config, times = apply_preset(preset, overrides), timed["times"][preset]
            memory = None if args.no_memory else run_child(_peak_memory, {**job, "preset": preset})
            work = 2 * count_macs(config)["per_clip"] * args.batch * (3 if mode == "train" else 1)
            results[(preset, mode)] = (statistics.median(times), min(times), work, args.batch * config.num_frames,
                                       memory, times)
    return results, profiles, floors


def print_table(config_name: str, results: dict, ceiling: float) -> None:
    """One row per (preset, mode): throughput (median and best), best time, GFLOP/s, memory, speed-up over mixste."""
    print(f"{'config':6} {'preset':16} {'mode':9} {'frames/s':>9} {'best f/s':>9} {'best ms':>9} "
          f"{'GFLOP/s':>8} {'%ceil':>6} {'peakMiB':>8} {'+MiB':>7} {'x mixste':>8}")
    for (preset, mode), (median, best, work, frames, memory, _) in results.items():
        gflops = work / best / 1e9  # best-of, like the matmul ceiling
        ratio = f"{results[('mixste', mode)][1] / best:.2f}" if ("mixste", mode) in results else ""
        print(f"{config_name:6} {preset:16} {mode:9} {frames / median:9.1f} {frames / best:9.1f} "
              f"{best * 1e3:9.1f} {gflops:8.1f} {100 * gflops / ceiling:6.1f} "
              f"{_memory_columns(memory)} {ratio:>8}", flush=True)


def print_summaries(summaries: list[tuple[str, dict]], ceiling: float) -> None:
    """Per (config, preset, mode): the share of the matmul ceiling, and every preset's speed ratio to mixste."""
    for config_name, results in summaries:
        for (preset, mode), (_, best, work, _, _, _) in results.items():
            print(f"{config_name}: {preset} {mode}: {work / best / 1e9:.1f} GFLOP/s = "
                  f"{100 * work / best / 1e9 / ceiling:.1f}% of the matmul ceiling")
        for preset, mode in results:
            if preset != "mixste" and ("mixste", mode) in results:
                ratio = ratio_summary(results[("mixste", mode)][5], results[(preset, mode)][5])
                print(f"{config_name}: {preset} / mixste {mode} throughput, best-of: {ratio}")


def print_findings(profiles: dict, floors: dict, summaries: list[tuple[str, dict]]) -> None:
    """The ``--profile`` lines (time by operator) and the ``--floor`` lines (required operators alone)."""
    if profiles:
        print("where one call spends its time (torch.profiler, self CPU time; profiler overhead included):")
    for (config_name, preset, mode), found in profiles.items():
        others = ", ".join(f"{name.removeprefix('aten::')} {100 * time_s / found['total_s']:.1f}%"
                           for name, time_s in found["others"][:5])
        print(f"{config_name} {preset} {mode}: {found['total_s'] * 1e3:.1f} ms, matrix products "
              f"{100 * found['matmul_share']:.1f}% ({found['matmul_gflops']:.1f} GFLOP/s inside them), other "
              f"{100 * (1 - found['matmul_share']):.1f}%: {others}")
    if floors:
        print("inference floor (operators every block needs, each timed alone, best of the repeats; token mixing, "
              "pooling and residual adds counted as free):")
    for (config_name, preset), found in floors.items():
        report = floor_report(found["counts"], found["seconds"], dict(summaries)[config_name], preset)
        print(f"{config_name}: {preset}: {report}")


def main() -> None:
    args = parse_args()
    configs = args.configs.split(",")
    modes = ["inference"] if args.no_train else ["inference", "train"]
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, compile={args.compile}, "
          f"repeats {args.repeats} (+{args.warmup} warm-up), drop path {args.drop_path}")
    mlp_shapes = [(CONFIGS[c]["num_frames"] * 17, CONFIGS[c]["embed_dim"], 2 * CONFIGS[c]["embed_dim"])
                  for c in configs]
    ceiling_shapes = [(2048, 2048, 2048), *mlp_shapes]
    ceilings = matmul_ceiling(args.threads, CEILING_REPEATS, ceiling_shapes)
    print("matmul ceiling before (fp32 GFLOP/s): " + ", ".join(f"{k}: {v:.1f}" for k, v in ceilings.items()))
    summaries, profiles, floors = [], {}, {}
    for config_name in configs:
        results, found_profiles, found_floors = measure_config(args, config_name, modes)
        profiles.update(found_profiles)
        floors.update(found_floors)
        print_table(config_name, results, max(ceilings.values()))
        summaries.append((config_name, results))
    after = matmul_ceiling(args.threads, CEILING_REPEATS, ceiling_shapes)
    print("matmul ceiling after (fp32 GFLOP/s): " + ", ".join(f"{k}: {v:.1f}" for k, v in after.items()))
    ceiling = max(*ceilings.values(), *after.values())
    print(f"matmul ceiling (best of all): {ceiling:.1f} GFLOP/s")
    print_summaries(summaries, ceiling)
    print_findings(profiles, floors, summaries)


if __name__ == "__main__":
    run_cli(main)
