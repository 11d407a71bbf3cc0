"""Model benchmark: inference / training-step throughput, peak memory and achieved GFLOP/s of the model presets.

Prints, for every configuration (``paper``: F=243, C=512, depth 8 as MixSTE; ``small``: F=27, C=64, depth 4) and
every preset (``default`` fc+pool, ``poolformer`` pool+pool, ``mixste`` attention+attention):

- inference throughput (frames/s = batch * F / time of one forward pass, ``torch.inference_mode``);
- training-step throughput (forward + backward + AdamW step on an MPJPE loss; stochastic depth `--drop-path`, by
  default run.py's default for a new model, 0);
- peak resident memory (eager) of a fresh process running only that preset and mode, and its rise above the
  process baseline after ``import torch`` (model, activations and optimiser state included);
- achieved GFLOP/s of the best call (analytic MACs of `common.model_cost`, x2; a training step counts 3x the
  forward FLOPs) and its fraction of a matmul ceiling measured here (best fp32 GFLOP/s of a large square matmul
  and of the model's own MLP matmul shape, same thread count, measured before and after the models, best of all;
  the table's %ceil uses the "before" ceiling, the summary lines the final one);
- the speed ratio of every preset to ``mixste`` (from the best-of times, which are the least disturbed by other load
  on the machine), with the ratio of medians and the spread of the per-round ratios (each round times every preset
  back to back, so one round's ratio compares calls made under the same load; their range shows how far the
  machine's noise moves the ratio);
- with ``--profile``: where one call spends its time (``torch.profiler``, self CPU time per operator): the share in
  matrix products (GEMMs, batched products, the fused attention kernel) with the GFLOP/s achieved inside them, and
  the largest other operators (LayerNorm, copies, elementwise adds, pooling, GELU). This is what bounds a preset's
  ratio to ``mixste``: the MAC ratio, corrected by how much time each spends outside matrix products;
- with ``--floor`` (inference): the time a call of each non-attention preset cannot go below in eager PyTorch, from the
  operators every block of the spec must run, each timed alone on the configuration's tensors (best of
  ``--repeats``): the MLP's two matrix products, the LayerNorms (two per block, the shared stream norms, the head)
  and GELU, i.e. the call with token mixing, pooling and residual adds for free; and the largest ratio to ``mixste``
  this allows (``mixste``'s best call / floor). The profiler's per-operator times carry its own overhead (about 15 %
  of a call here); these do not.

Timing runs in one spawned process per (config, mode) that builds every preset and times them INTERLEAVED
(A, B, C, A, B, C, ...), so load from other processes hits all presets alike and the ratios stay meaningful on a
busy machine; peak memory is measured separately in one fresh process per (config, preset, mode), eager, two calls.
The numbers are wall-clock: run the script more than once.

Inference of the non-attention presets runs through the fused CPU kernels (`common.fused_inference`) when they are
available (the header says which); ``--compare-eager`` adds rows ``PRESET/eager`` timed with them off in the same
interleaved rounds, ``--no-fused`` turns them off for the whole run.

Usage: python benchmarks/bench_model.py [--configs paper,small] [--presets mixste,default,poolformer]
       [--repeats 5] [--threads N] [--batch 1] [--compile] [--no-train] [--no-memory]
       [--drop-path 0.0] [--system-malloc] [--profile] [--floor] [--compare-eager | --no-fused]
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

from common import fused_inference  # noqa: E402
from common.arguments import MODEL_FLAG_DEFAULTS  # noqa: E402
from common.cpu_allocator import keep_freed_memory  # noqa: E402
from common.errors import UserError, run_cli  # noqa: E402
from common.mixers import TEMPORAL, add_linear  # noqa: E402
from common.model import PRESETS, MetaFormerBlock, ModelConfig, apply_preset, build_model  # noqa: E402
from common.model_cost import count_macs  # noqa: E402

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


def ratio_summary(reference: list[float], times: list[float]) -> str:
    """Speed ratio ``reference / times`` of two presets timed in the same interleaved rounds: best-of, ratio of
    medians, and the median and range of the per-round ratios."""
    rounds = sorted(ref / own for ref, own in zip(reference, times, strict=True))
    of_medians = statistics.median(reference) / statistics.median(times)
    return (f"{min(reference) / min(times):.2f}x (ratio of medians {of_medians:.2f}x, per round "
            f"{statistics.median(rounds):.2f}x, range {rounds[0]:.2f}-{rounds[-1]:.2f}x over {len(rounds)} rounds)")


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


EAGER_SUFFIX = "/eager"


def split_label(label: str) -> tuple[str, bool]:
    """``"default/eager"`` -> (``"default"``, True): a preset timed with the fused CPU kernels off."""
    return label.removesuffix(EAGER_SUFFIX), label.endswith(EAGER_SUFFIX)


def _make_step(config, mode: str, batch: int, compile_model: bool, eager: bool = False):
    """A model of ``config`` and a no-argument callable running one inference call or one training step
    (``eager``: inference through the eager path, with the fused CPU kernels off)."""
    model = build_model(config)
    inputs = torch.randn(batch, config.num_frames, config.num_joints, config.in_chans)
    targets = torch.randn(batch, config.num_frames, config.num_joints, config.out_chans)
    forward = torch.compile(model) if compile_model else model
    if mode == "inference":
        model.eval()

        def step() -> None:
            with torch.inference_mode(), fused_inference.eager_only() if eager else contextlib.nullcontext():
                forward(inputs)
    else:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss = torch.linalg.norm(forward(inputs) - targets, dim=-1).mean()
            loss.backward()
            optimizer.step()

    return model, step


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
    exactly as a block's inference path runs them (``MetaFormerBlock.forward_inference``): fc1 (with its bias),
    GELU in place, fc2 with the residual accumulated by the product (`add_linear`), and LayerNorm. The two MLP
    products are reported as one ``mlp_product`` time (their mean)."""
    block = MetaFormerBlock(config, TEMPORAL, 0, 0.0).eval()
    x = torch.randn(batch, config.num_frames, config.num_joints, config.embed_dim)

    def best_of(operation) -> float:
        operation()
        best = float("inf")
        for _ in range(max(repeats, 3)):
            start = time.perf_counter()
            operation()
            best = min(best, time.perf_counter() - start)
        return best

    with torch.inference_mode():
        normed = block.norm2(x)
        hidden = block.mlp.fc1(normed)
        fc1 = best_of(lambda: block.mlp.fc1(normed))
        fc2 = best_of(lambda: add_linear(x, hidden, block.mlp.fc2, None))
        return {
            "mlp_product": (fc1 + fc2) / 2,
            "layer_norm": best_of(lambda: block.norm2(x)),
            "gelu": best_of(lambda: torch.ops.aten.gelu_(hidden, approximate=block.mlp.act.approximate)),
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
        if job["keep_freed_memory"]:
            keep_freed_memory()
        torch.manual_seed(0)
        steps = {}
        for label in job["presets"]:
            preset, eager = split_label(label)
            config = apply_preset(preset, job["overrides"])
            _, steps[label] = _make_step(config, job["mode"], job["batch"], job["compile"], eager)
            for _ in range(job["warmup"]):
                steps[label]()
        times = {preset: [] for preset in job["presets"]}
        for _ in range(job["repeats"]):
            for preset, step in steps.items():
                start = time.perf_counter()
                step()
                times[preset].append(time.perf_counter() - start)
        profiles = {}
        if job["profile"]:
            for label, step in steps.items():
                work = 2 * count_macs(apply_preset(split_label(label)[0], job["overrides"]))["per_clip"] * job["batch"]
                profiles[label] = profile_call(step, work * (3 if job["mode"] == "train" else 1))
        floors = {}
        if job["floor"] and job["mode"] == "inference":
            seconds = time_floor_operators(apply_preset("default", job["overrides"]), job["batch"], job["repeats"])
            for label in job["presets"]:
                config = apply_preset(split_label(label)[0], job["overrides"])
                if "attention" not in (config.spatial_mixer, config.temporal_mixer):
                    floors[label] = {"counts": floor_counts(config), "seconds": seconds}
        queue.put({"times": times, "profiles": profiles, "floors": floors})
    except Exception as error:  # report to the parent, which raises it
        queue.put({"error": f"{type(error).__name__}: {error}"})


def _peak_memory(job: dict, queue) -> None:
    """Child process: peak resident memory of two eager calls of one preset, and its rise above the baseline."""
    try:
        torch.set_num_threads(job["threads"])
        if job["keep_freed_memory"]:
            keep_freed_memory()
        baseline = _max_rss_mib()
        preset, eager = split_label(job["preset"])
        config = apply_preset(preset, job["overrides"])
        _, step = _make_step(config, job["mode"], job["batch"], compile_model=False, eager=eager)
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
    parser.add_argument("--drop-path", type=float, default=MODEL_FLAG_DEFAULTS["drop_path"],
                        help="stochastic depth rate of the timed models (default: run.py's default for a new model)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one call per preset and mode: time in matrix products vs other operators")
    parser.add_argument("--floor", action="store_true",
                        help="also time the operators every block needs (MLP products, LayerNorm, GELU) alone and "
                             "print the call time they add up to and the largest ratio to mixste it allows")
    parser.add_argument("--no-fused", action="store_true",
                        help="inference without the fused CPU kernels (common/fused_inference.py): the eager path")
    parser.add_argument("--compare-eager", action="store_true",
                        help="also time every non-attention preset's inference with the fused CPU kernels off "
                             "(rows 'PRESET/eager'), in the same interleaved rounds")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc malloc untuned (run.py tunes it: common/cpu_allocator.py); for comparison")
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
    if args.no_fused and args.compare_eager:
        raise UserError("--compare-eager: compares the fused kernels with the eager path; drop --no-fused")
    if not 0.0 <= args.drop_path < 1.0:
        raise UserError(f"--drop-path: expected a probability in [0, 1), got {args.drop_path}")
    if args.warmup < 0:
        raise UserError(f"--warmup: expected a non-negative integer, got {args.warmup}")
    return args


def main() -> None:
    args = parse_args()
    configs, presets = args.configs.split(","), args.presets.split(",")
    modes = ["inference"] if args.no_train else ["inference", "train"]
    if args.no_fused:
        os.environ[fused_inference.ENV_SWITCH] = "0"  # inherited by the timing processes
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, compile={args.compile}, "
          f"repeats {args.repeats} (+{args.warmup} warm-up), drop path {args.drop_path}, "
          f"malloc {'system' if args.system_malloc else 'tuned'}")
    kernels = fused_inference.status()  # built here once, before the timing processes load it
    print(f"fused CPU inference kernels (non-attention presets, eval): "
          f"{'on' if kernels.available and not args.compile else 'off'} ({kernels.detail}"
          f"{'; torch.compile traces the eager path' if args.compile and kernels.available else ''})")
    eager_labels = [f"{p}{EAGER_SUFFIX}" for p in presets if args.compare_eager and
                    "attention" not in (PRESETS[p]["spatial_mixer"], PRESETS[p]["temporal_mixer"])]
    mlp_shapes = [(CONFIGS[c]["num_frames"] * 17, CONFIGS[c]["embed_dim"], 2 * CONFIGS[c]["embed_dim"])
                  for c in configs]
    ceiling_shapes = [(2048, 2048, 2048), *mlp_shapes]
    ceilings = matmul_ceiling(args.threads, CEILING_REPEATS, ceiling_shapes)
    print("matmul ceiling before (fp32 GFLOP/s): " + ", ".join(f"{k}: {v:.1f}" for k, v in ceilings.items()))
    header = (f"{'config':6} {'preset':16} {'mode':9} {'frames/s':>9} {'best f/s':>9} {'best ms':>9} "
              f"{'GFLOP/s':>8} {'%ceil':>6} {'peakMiB':>8} {'+MiB':>7} {'x mixste':>8}")
    summaries, profiles, floors = [], {}, {}
    for config_name in configs:
        overrides = {**CONFIGS[config_name], "drop_path_rate": args.drop_path}
        results = {}
        for mode in modes:
            labels = presets + (eager_labels if mode == "inference" else [])
            job = {"overrides": overrides, "presets": labels, "mode": mode, "threads": args.threads,
                   "batch": args.batch, "compile": args.compile, "repeats": args.repeats, "warmup": args.warmup,
                   "keep_freed_memory": not args.system_malloc, "profile": args.profile, "floor": args.floor}
            timed = run_child(_time_presets, job)
            times = timed["times"]
            profiles.update({(config_name, preset, mode): found for preset, found in timed["profiles"].items()})
            floors.update({(config_name, preset): found for preset, found in timed["floors"].items()})
            for preset in labels:
                config = apply_preset(split_label(preset)[0], overrides)
                memory = None if args.no_memory else run_child(_peak_memory, {**job, "preset": preset})
                work = 2 * count_macs(config)["per_clip"] * args.batch * (3 if mode == "train" else 1)
                frames = args.batch * config.num_frames
                median, best = statistics.median(times[preset]), min(times[preset])
                results[(preset, mode)] = (median, best, work, frames, memory, times[preset])
        print(header)
        for (preset, mode), (median, best, work, frames, memory, _) in results.items():
            gflops = work / best / 1e9  # best-of, like the matmul ceiling
            ratio = f"{results[('mixste', mode)][1] / best:.2f}" if ("mixste", mode) in results else ""
            print(f"{config_name:6} {preset:16} {mode:9} {frames / median:9.1f} {frames / best:9.1f} "
                  f"{best * 1e3:9.1f} {gflops:8.1f} {100 * gflops / max(ceilings.values()):6.1f} "
                  f"{_memory_columns(memory)} {ratio:>8}", flush=True)
        summaries.append((config_name, results))
    after = matmul_ceiling(args.threads, CEILING_REPEATS, ceiling_shapes)
    print("matmul ceiling after (fp32 GFLOP/s): " + ", ".join(f"{k}: {v:.1f}" for k, v in after.items()))
    ceiling = max(*ceilings.values(), *after.values())
    print(f"matmul ceiling (best of all): {ceiling:.1f} GFLOP/s")
    for config_name, results in summaries:
        for (preset, mode), (_, best, work, _, _, _) in results.items():
            print(f"{config_name}: {preset} {mode}: {work / best / 1e9:.1f} GFLOP/s = "
                  f"{100 * work / best / 1e9 / ceiling:.1f}% of the matmul ceiling")
        for preset, mode in results:
            if preset != "mixste" and "mixste" in presets:
                ratio = ratio_summary(results[("mixste", mode)][5], results[(preset, mode)][5])
                print(f"{config_name}: {preset} / mixste {mode} throughput, best-of: {ratio}")
    if profiles:
        print("where one call spends its time (torch.profiler, self CPU time; profiler overhead included):")
    for (config_name, preset, mode), found in profiles.items():
        others = ", ".join(f"{name.removeprefix('aten::')} {100 * time_s / found['total_s']:.1f}%"
                           for name, time_s in found["others"][:5])
        print(f"{config_name} {preset} {mode}: {found['total_s'] * 1e3:.1f} ms, matrix products "
              f"{100 * found['matmul_share']:.1f}% ({found['matmul_gflops']:.1f} GFLOP/s inside them), other "
              f"{100 * (1 - found['matmul_share']):.1f}%: {others}")
    if floors:
        print("eager inference floor (operators every block needs in eager PyTorch, each timed alone, best of the "
              "repeats; token mixing, pooling and residual adds counted as free; the fused CPU kernels run the "
              "LayerNorms inside one pass per block and can go below it):")
    for (config_name, preset), found in floors.items():
        report = floor_report(found["counts"], found["seconds"], dict(summaries)[config_name], preset)
        print(f"{config_name}: {preset}: {report}")


if __name__ == "__main__":
    run_cli(main)
