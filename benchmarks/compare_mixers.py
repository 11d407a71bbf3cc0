"""Compare token-mixer combinations under the same training budget by running `run.py` once per variant.

Every variant gets the same data, clip length, width, depth, batch, learning rate and schedule, and either the same
number of epochs (the same optimisation steps) or, with ``--minutes``, the same wall-clock training time (run.py
``--time-budget``; cheaper variants then take more steps). No model selection: every run uses ``--no-eval`` and the
last weights are tested once. The table reports each variant's steps, wall time and test errors (Human3.6M protocol:
MPJPE #1 and P-MPJPE #2 over action groups, every frame once, flip TTA on). Wall times are comparable only when the
variants share the machine evenly (``--parallel N --threads T`` with N * T = the core count, or one at a time alone).

Examples (real Human3.6M from ../shared, train S1,S5, test S9, ground-truth 2D):

    python benchmarks/compare_mixers.py -f 27 -e 1 --threads 1 --variants default,mixste --out log/compare_f27
    python benchmarks/compare_mixers.py -f 27 --minutes 30 -e 100 -lrd 0.95 --parallel 2 --threads 1 \
        --variants default,mixste --out log/compare_f27_30min
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.core.errors import UserError, run_cli  # noqa: E402

# name -> (description, run.py model flags)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "mixste": ("attention + attention (MixSTE)", ["--preset", "mixste"]),
    "poolformer": ("pool 3 + pool 3 (the seed's literal design)", ["--preset", "poolformer"]),
    "graph": ("graph + pool 3", ["--preset", "default", "--spatial-mixer", "graph"]),
    "attn_pool": ("attention + pool 3", ["--preset", "default", "--spatial-mixer", "attention"]),
    "default": ("fc + pool 3 (fixed)", ["--preset", "default"]),
    "dilated": ("fc + pool 3 (dilated)", ["--preset", "default", "--temporal-pool-schedule", "dilated"]),
    "growing": ("fc + pool (growing)", ["--preset", "default", "--temporal-pool-schedule", "growing"]),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="mixste,poolformer,graph,attn_pool,default,dilated",
                        help=f"comma-separated variants among {', '.join(VARIANTS)}")
    parser.add_argument("-f", "--frames", type=int, default=27, help="clip length")
    parser.add_argument("-e", "--epochs", type=int, default=2,
                        help="training epochs (the shared budget; with --minutes: the most epochs a variant may use)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="wall-clock training budget per variant (run.py --time-budget; 0: epochs only)")
    parser.add_argument("-lrd", "--lr-decay", type=float, default=0.99, help="run.py -lrd (per epoch)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="variants trained at the same time (use with --threads so they share the cores evenly)")
    parser.add_argument("-cs", "--channels", type=int, default=64, help="embedding width")
    parser.add_argument("-dep", "--depth", type=int, default=4, help="spatial+temporal block pairs")
    parser.add_argument("--clips-per-step", type=int, default=16, help="clips per optimisation step")
    parser.add_argument("-lr", "--learning-rate", type=float, default=1e-3)
    parser.add_argument("-d", "--dataset", default="h36m", help="run.py -d (h36m, or synthetic for a licence-free try)")
    parser.add_argument("-k", "--keypoints", default="gt_projected", help="run.py -k (2D input)")
    parser.add_argument("--data-dir", default=None,
                        help="run.py --data-dir (default: ../shared/data/h36m for h36m, the project's data/ otherwise)")
    parser.add_argument("-str", "--subjects-train", default="S1,S5")
    parser.add_argument("-ste", "--subjects-test", default="S9")
    parser.add_argument("--seed", type=int, default=0,
                        help="run.py --seed for every variant (weights, clip order, flips); change it for a replicate")
    parser.add_argument("--threads", type=int, default=0,
                        help="run.py --threads for every run (0: run.py's default, chosen by model size)")
    parser.add_argument("--out", default=str(ROOT / "log" / "compare_mixers"), help="folder for checkpoints and logs")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = str(ROOT.parent / "shared" / "data" / "h36m" if args.dataset == "h36m" else ROOT / "data")
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants: unknown {', '.join(unknown)} (expected some of {', '.join(VARIANTS)})")
    return args


def run_variant(name: str, args: argparse.Namespace) -> dict:
    """Train and evaluate one variant through run.py; returns its row of the table."""
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ROOT / "run.py"), "-d", args.dataset, "-k", args.keypoints,
               "--data-dir", args.data_dir, "-str", args.subjects_train, "-ste", args.subjects_test,
               "-f", str(args.frames), "-s", str(args.frames),
               "-b", str(args.frames * args.clips_per_step), "-cs", str(args.channels), "-dep", str(args.depth),
               "-e", str(args.epochs), "-lr", str(args.learning_rate), "-lrd", str(args.lr_decay),
               "--time-budget", str(args.minutes), "--seed", str(args.seed), "-c", str(out), "-l", str(out / "log"),
               "--workers", "0", "--no-progress", "--no-eval", "--overwrite", *VARIANTS[name][1]]
    if args.threads:
        command += ["--threads", str(args.threads)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (out / "console.txt").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise UserError(f"variant {name} failed (exit {result.returncode}); see {out / 'console.txt'}")
    model_line = next((line for line in result.stdout.splitlines() if line.startswith("model ")), "")
    steps_line = next((line for line in result.stdout.splitlines() if "steps per epoch" in line), "")
    results = json.loads((out / "best_epoch_eval.json").read_text())["average"]
    trained = [line for line in result.stdout.splitlines() if line.startswith("[")]
    stopped = next((line for line in result.stdout.splitlines() if line.startswith("time budget")), "")
    per_epoch = int(re.search(r"(\d+) steps per epoch", steps_line).group(1))
    partial = re.search(r"after (\d+) of \d+ steps", stopped)
    step_count = per_epoch * (len(trained) - 1) + int(partial.group(1)) if partial else per_epoch * len(trained)
    return {"variant": name, "mixers": VARIANTS[name][0], "model": model_line, "steps": steps_line,
            "trained": trained[-1] if trained else "", "step_count": step_count, "seconds": seconds,
            "mpjpe": results["mpjpe"], "p_mpjpe": results["p_mpjpe"]}


def main() -> None:
    args = parse_args()
    names = args.variants.split(",")
    for name in names:
        print(f"running {name} ({VARIANTS[name][0]}) ...", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:  # threads only wait for run.py processes
        rows = list(pool.map(lambda name: run_variant(name, args), names))
    for row in rows:
        print(f"{row['variant']}:\n  {row['model']}\n  {row['steps']}\n  {row['trained']}\n  {row['seconds']:.0f} s, "
              f"MPJPE {row['mpjpe']:.1f} mm, P-MPJPE {row['p_mpjpe']:.1f} mm", flush=True)
    budget = f"{args.minutes:g} min of training each (at most {args.epochs} epochs)" if args.minutes else \
        f"{args.epochs} epochs"
    print(f"\nF={args.frames}, C={args.channels}, depth {args.depth}, {budget}, {args.clips_per_step} clips per step, "
          f"lr {args.learning_rate} x {args.lr_decay} per epoch, {args.threads or 'default'} thread(s) per run, "
          f"{args.parallel} run(s) at a time, seed {args.seed}, {args.dataset}: train {args.subjects_train}, test "
          f"{args.subjects_test}, 2D {args.keypoints}; the last weights tested (no model selection), errors over "
          "action groups, every frame once, flip TTA on")
    print("| variant | mixers | steps | wall time (incl. test) | MPJPE (P1) | P-MPJPE (P2) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['mixers']} | {row['step_count']} | {row['seconds'] / 60:.1f} min "
              f"| {row['mpjpe']:.1f} mm | {row['p_mpjpe']:.1f} mm |")
    (Path(args.out) / "summary.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    run_cli(main)
