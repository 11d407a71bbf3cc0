"""GPU check (issue 17): correctness, the seed's commands and throughput on one CUDA machine, in one run (~8 min, H200).

1. the official MixSTE fixture (``--fixtures DIR``) on the device in fp32 against the CPU and the stored official
   output (1e-4), and its error under bf16 autocast;
2. the seed's command ``python run.py -d synthetic -k gt -b 1024 -f 243 -s 243 -gpu 0`` (one epoch cut by
   ``--time-budget``), then ``--evaluate best_epoch.bin``: both succeed, the log names the device context
   (`DeviceContext.describe`) and the data-wait share, the evaluation repeats the training run's final MPJPE;
3. ``torchrun --nproc_per_node 1 run.py ...``: the same checks, and on CUDA DistributedDataParallel (NCCL);
4. frames/s and peak GPU memory of `train_step` and of inference for ``default``, ``poolformer`` and ``mixste`` at
   F=243, C=512, depth 8 (1024 // F clips per step), fp32 / bf16 autocast, eager / ``torch.compile``; ratios to
   ``mixste`` and the issue's goals.

The synthetic dataset is generated into ``--work-dir`` when absent. ``--smoke``: the same steps on the CPU with F=9,
C=16, depth 1 and tiny data (bf16 and compiled rows skipped, with the reason). Exit status 1 when a check failed (goals
are reported, not checked). docs/GPU_CHECK.md says how to run it on the GPU machine.

Usage: python benchmarks/gpu_check.py [--smoke] [--output report.json] [--work-dir DIR] [--fixtures DIR]
       [--steps N] [--time-limit SECONDS]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common.core.errors import UserError, run_cli  # noqa: E402
from common.core.files import atomic_write_json  # noqa: E402
from common.model.checkpoints import load_checkpoint, model_with_weights  # noqa: E402
from common.model.config import apply_preset  # noqa: E402
from common.model.metaformer import build_model  # noqa: E402
from common.model.mixste_official import config_from_official_state_dict  # noqa: E402
from common.training.distributed import DeviceContext  # noqa: E402
from common.training.losses import LossWeights, joint_weights_for  # noqa: E402
from common.training.step import StepSettings, make_optimizer, train_step  # noqa: E402

FIXTURE_BIN = "mixste_official_f27_d64_dep2_s0.bin"
FIXTURE_IO = "mixste_official_f27_d64_dep2_s0_io.npz"
TOLERANCE = 1e-4
PRESET_ORDER = ("default", "poolformer", "mixste")
SEED_BATCH_FRAMES = 1024
NUM_JOINTS = 17
GOAL_RATIO, GOAL_DEFAULT_FPS = 2.0, 5000.0
TRAIN_FLAGS = ["-e", "1", "--time-budget", "0.5"]  # one epoch, cut after 30 s
# (F, C, depth, per-command timeout s, run.py flags beyond the seed's, synthetic-data flags)
MODES = {
    "full": (243, 512, 8, 300, [], []),
    "smoke": (9, 16, 1, 120, ["-cs", "16", "-dep", "1", "-str", "S1", "-ste", "S9", "--workers", "0"],
              ["--frames", "100", "--subjects", "S1,S9", "--actions", "Walking"]),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every step (CI)")
    parser.add_argument("--output", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument("--work-dir", metavar="DIR", help="synthetic data, checkpoints (default: a temporary folder, "
                                                          "removed at the end)")
    parser.add_argument("--fixtures", default=str(ROOT.parent / "shared" / "fixtures"), metavar="DIR",
                        help=f"folder holding {FIXTURE_BIN} and {FIXTURE_IO} (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="timed calls per throughput row (default 20; --smoke: 2)")
    parser.add_argument("--time-limit", type=float, default=420.0, metavar="SECONDS",
                        help="compiled rows still to run after this many seconds are skipped (default %(default)s)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps: expected a positive number of timed calls, got {args.steps}")
    args.steps = args.steps or (2 if args.smoke else 20)
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def max_error(a: torch.Tensor, b: torch.Tensor | np.ndarray) -> float:
    return float((a.detach().float().cpu() - torch.as_tensor(b).float()).abs().max())


# --- 1. correctness ------------------------------------------------------------------------------------------------


def check_fixture(fixtures: Path, device: torch.device) -> dict:
    """The official MixSTE fixture on ``device`` (fp32 and bf16 autocast) against the CPU and the stored output."""
    paths = [fixtures / FIXTURE_BIN, fixtures / FIXTURE_IO]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        return {"ok": False, "reason": f"{', '.join(missing)}: not found (copy ../shared/fixtures or pass --fixtures)"}
    io = np.load(paths[1])
    checkpoint = load_checkpoint(paths[0])  # as run.py --evaluate reads an official file
    config = config_from_official_state_dict(checkpoint["model_pos"], num_heads=int(io["config"][3]))
    model = model_with_weights(config, checkpoint, paths[0]).eval()
    inputs, stored = torch.from_numpy(io["input_2d"]), io["output_3d"]
    with torch.no_grad():
        cpu = model(inputs)
        model.to(device)
        on_device = model(inputs.to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bf16 = model(inputs.to(device))
    report = {"device": str(device), "cpu_vs_fixture": max_error(cpu, stored),
              "device_vs_cpu": max_error(on_device, cpu), "device_vs_fixture": max_error(on_device, stored),
              "bf16_autocast_vs_fixture": max_error(bf16, stored), "tolerance": TOLERANCE,
              "output_abs_max": float(np.abs(stored).max())}
    report["ok"] = max(report["device_vs_cpu"], report["device_vs_fixture"], report["cpu_vs_fixture"]) <= TOLERANCE
    return report


# --- 2./3. run.py as a user types it ----------------------------------------------------------------------------------


def ensure_data(data_dir: Path, data_flags: list[str]) -> None:
    """The synthetic dataset in ``data_dir`` (data/prepare_data_synthetic.py), unless it is there already."""
    if (data_dir / "data_3d_synthetic.npz").is_file() and (data_dir / "data_2d_synthetic_gt.npz").is_file():
        return
    from data import prepare_data_synthetic

    data_dir.mkdir(parents=True, exist_ok=True)
    prepare_data_synthetic.main(["--output-dir", str(data_dir), "--overwrite", *data_flags])


def run_py_commands(frames: int, gpus: str, data_dir: Path, work: Path, extra: list[str]) -> dict[str, list[str]]:
    """The three commands: seed training (DataParallel over ``gpus``), its evaluation, and torchrun."""
    seed = ["-d", "synthetic", "-k", "gt", "-b", str(SEED_BATCH_FRAMES), "-f", str(frames), "-s", str(frames),
            "-gpu", gpus, "--data-dir", str(data_dir), "--no-progress", "--nolog"]
    run_py, python = str(ROOT / "run.py"), sys.executable
    return {
        "train": [python, run_py, *seed, *extra, *TRAIN_FLAGS, "-c", str(work / "checkpoint")],
        "evaluate": [python, run_py, *seed, *extra, "-c", str(work / "checkpoint"), "--evaluate", "best_epoch.bin"],
        "torchrun": [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", run_py, *seed,
                     *extra, *TRAIN_FLAGS, "-c", str(work / "checkpoint_torchrun")],
    }


def expected_contexts(device: torch.device, gpus: str) -> tuple[str, list[str]]:
    """What `DeviceContext.describe` prints for ``-gpu gpus`` alone, and for rank 0 of a one-process torchrun (DDP,
    or the bare model on the first GPU where no process group is made for one process)."""
    ids = [int(i) for i in gpus.split(",")] if device.type == "cuda" else []
    plain = DeviceContext(device=device, device_ids=ids).describe()
    ddp = DeviceContext(device=device, device_ids=ids[:1], world_size=1, distributed=True).describe()
    return plain, [ddp, DeviceContext(device=device, device_ids=ids[:1]).describe()]


def run_command(command: list[str], timeout: float) -> tuple[int | None, str, float]:
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as error:
        output, code = f"{error.stdout or ''}{error.stderr or ''}\ntimed out after {timeout:.0f} s", None
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return code, output, time.perf_counter() - started


def _number(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


def check_command(name: str, command: list[str], timeout: float, contexts: list[str], need_ddp: bool) -> dict:
    """Run one command and read its log: success, device context, data-wait share, final MPJPE."""
    code, output, seconds = run_command(command, timeout)
    shown = [c for c in contexts if c in output]
    result = {"command": "python " + " ".join(command[1:]).replace(str(ROOT) + "/", ""),
              "returncode": code, "seconds": round(seconds, 1), "device_context": shown[0] if shown else None,
              "ddp": "DistributedDataParallel" in output,
              "epoch_frames_per_s": _number(r"([\d.]+) frames/s, data wait", output),
              "data_wait_percent": _number(r"data wait ([\d.]+)%", output),
              "final_mpjpe_mm": _number(r"final MPJPE: ([\d.]+) mm", output)}
    problems = [] if code == 0 else [f"exit status {code}"]
    if result["final_mpjpe_mm"] is None:
        problems.append("no final MPJPE in the log")
    if name != "evaluate":
        if not shown:
            problems.append(f"the log names none of the expected device contexts {contexts}")
        if result["data_wait_percent"] is None:
            problems.append("no data-wait share in the epoch line")
        if need_ddp and not result["ddp"]:
            problems.append("torchrun ran without DistributedDataParallel, so no NCCL process group was made "
                            "(docs/GPU_CHECK.md, known risks)")
    result.update(ok=not problems, problems=problems, log_tail=output[-1500:] if problems else "")
    return result


def check_run_py(device: torch.device, mode: str, work: Path) -> dict:
    frames, _, _, timeout, extra, data_flags = MODES[mode]
    data_dir = work / f"data_{mode}"
    ensure_data(data_dir, data_flags)
    gpus = ",".join(map(str, range(torch.cuda.device_count()))) if device.type == "cuda" else "cpu"
    plain, torchrun = expected_contexts(device, gpus)
    commands = run_py_commands(frames, gpus, data_dir, work, extra)
    for folder in ("checkpoint", "checkpoint_torchrun"):  # run.py refuses to train over an earlier run
        shutil.rmtree(work / folder, ignore_errors=True)
    results = {"train": check_command("train", commands["train"], timeout, [plain], False)}
    results["evaluate"] = check_command("evaluate", commands["evaluate"], timeout, [plain], False)
    trained, evaluated = results["train"]["final_mpjpe_mm"], results["evaluate"]["final_mpjpe_mm"]
    if trained is not None and evaluated is not None and abs(trained - evaluated) > 0.1:
        results["evaluate"]["problems"].append(f"--evaluate gave {evaluated} mm, the training run {trained} mm")
        results["evaluate"]["ok"] = False
    results["torchrun"] = check_command("torchrun", commands["torchrun"], timeout, torchrun, device.type == "cuda")
    results["data_parallel"] = "used" if "DataParallel over" in plain else f"not used: {plain} (one device)"
    return results


# --- 4. throughput -------------------------------------------------------------------------------------------------


def make_call(preset: str, mode: str, dtype: str, compiled: bool, shape: tuple[int, int, int], device: torch.device):
    """A model of ``preset`` and a no-argument callable running one training step or one inference call."""
    frames, channels, depth = shape
    torch.manual_seed(0)
    model = build_model(apply_preset(preset, {"num_frames": frames, "embed_dim": channels, "depth": depth,
                                              "drop_path_rate": 0.0})).to(device)
    if compiled:
        torch._dynamo.reset()  # one cache per model: later presets must not hit the recompile limit
        model.compile()
    clips = max(1, SEED_BATCH_FRAMES // frames)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(clips, frames, NUM_JOINTS, 2, generator=generator).to(device)
    targets = (0.2 * torch.randn(clips, frames, NUM_JOINTS, 3, generator=generator)).to(device)
    amp = torch.bfloat16 if dtype == "bf16" else None
    if mode == "train":
        optimizer = make_optimizer(model.train(), 1e-4, 0.1)
        settings = StepSettings(LossWeights(tuple(float(w) for w in joint_weights_for(NUM_JOINTS))), 0.0, amp)
        return model, lambda: train_step(model, inputs, targets, optimizer, settings)

    def infer():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp is not None):
            return model(inputs)

    return model.eval(), infer


def measure(preset: str, mode: str, dtype: str, compiled: bool, shape: tuple[int, int, int], device: torch.device,
            steps: int) -> dict:
    """frames/s of ``steps`` calls after warm-up (the first call's time reported apart: compilation) and peak memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model, call = make_call(preset, mode, dtype, compiled, shape, device)
    started = time.perf_counter()
    call()
    synchronize(device)
    first = time.perf_counter() - started
    for _ in range(min(2, steps)):  # warm-up (allocator, autotuning)
        call()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        call()
    synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    frames = max(1, SEED_BATCH_FRAMES // shape[0]) * shape[0]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    del model, call
    return {"frames_per_s": frames / seconds, "ms_per_call": 1000 * seconds, "first_call_s": first,
            "peak_memory_mib": peak, "frames_per_call": frames}


def skip_reason(dtype: str, compiled: bool, device: torch.device, deadline: float) -> str | None:
    if device.type != "cuda" and dtype == "bf16":
        return "skipped on the CPU: train_step autocasts on CUDA only (the CPU trains in fp32)"
    if device.type != "cuda" and compiled:
        return "skipped on the CPU: inductor needs 30-60 s per model there (compile is timed on CUDA)"
    if compiled and time.perf_counter() > deadline:
        return "skipped: --time-limit reached before this row"
    return None


def throughput(shape: tuple[int, int, int], device: torch.device, steps: int, deadline: float) -> list[dict]:
    """Every (compile, dtype, mode, preset) row, eager rows first (compiled rows may hit the time limit)."""
    rows = []
    for compiled in (False, True):
        for dtype in ("bf16", "fp32") if compiled else ("fp32", "bf16"):
            for mode in ("train", "inference"):
                for preset in PRESET_ORDER:
                    row = {"preset": preset, "mode": mode, "dtype": dtype, "compiled": compiled}
                    reason = skip_reason(dtype, compiled, device, deadline)
                    try:
                        row.update({"skipped": reason} if reason else measure(preset, mode, dtype, compiled, shape,
                                                                              device, steps))
                    except Exception as error:  # a failed row (e.g. a compilation) must not hide the others
                        row["error"] = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
                    rows.append(row)
    return rows


def ratios_and_goals(rows: list[dict], applicable: bool) -> tuple[list[dict], dict]:
    """Every preset's frames/s over mixste's in the same variant; the goals (``met`` None unless ``applicable``: they
    are set for the paper configuration on a GPU)."""
    speed = {(r["preset"], r["mode"], r["dtype"], r["compiled"]): r["frames_per_s"] for r in rows
             if "frames_per_s" in r}
    ratios = []
    for preset, mode, dtype, compiled in speed:
        reference = speed.get(("mixste", mode, dtype, compiled))
        if preset != "mixste" and reference:
            ratios.append({"preset": preset, "mode": mode, "dtype": dtype, "compiled": compiled,
                           "vs_mixste": speed[(preset, mode, dtype, compiled)] / reference})
    pool = {f"{r['preset']} {'compiled' if r['compiled'] else 'eager'}": r["vs_mixste"] for r in ratios
            if r["mode"] == "train" and r["dtype"] == "bf16"}
    default_fps = {f"{d} {'compiled' if c else 'eager'}": v for (p, m, d, c), v in speed.items()
                   if p == "default" and m == "train"}
    goals = {
        "pool_train_bf16_vs_mixste": {"goal": f">= {GOAL_RATIO}x", "values": pool,
                                      "met": bool(pool) and max(pool.values()) >= GOAL_RATIO},
        "default_train_frames_per_s": {"goal": f"> {GOAL_DEFAULT_FPS:.0f}", "values": default_fps,
                                       "met": bool(default_fps) and max(default_fps.values()) > GOAL_DEFAULT_FPS},
    }
    for goal in goals.values():
        goal["met"] = goal["met"] if applicable else None
    return ratios, goals


# --- report --------------------------------------------------------------------------------------------------------


def _cell(row: dict) -> str:
    if "frames_per_s" not in row:
        return row.get("skipped") or f"error: {row.get('error')}"
    memory = f", {row['peak_memory_mib']:.0f} MiB" if row["peak_memory_mib"] is not None else ""
    return f"{row['frames_per_s']:,.0f} frames/s ({row['ms_per_call']:.1f} ms{memory})"


def format_report(report: dict) -> str:
    fixture = report["correctness"]
    lines = [f"GPU check ({report['mode']}) on {report['device_name']}, torch {report['torch']}, "
             f"F={report['shape']['frames']} C={report['shape']['channels']} depth={report['shape']['depth']}, "
             f"{report['shape']['clips_per_step']} clips per step", "",
             "1. official MixSTE fixture: " + (fixture.get("reason") or
             f"device vs CPU {fixture['device_vs_cpu']:.2e}, device vs fixture {fixture['device_vs_fixture']:.2e}, "
             f"CPU vs fixture {fixture['cpu_vs_fixture']:.2e} (tolerance {TOLERANCE:g}); bf16 autocast vs fixture "
             f"{fixture['bf16_autocast_vs_fixture']:.2e} (outputs up to {fixture['output_abs_max']:.2f})")
             + (" OK" if fixture["ok"] else " FAILED")]
    for name in ("train", "evaluate", "torchrun"):
        result = report["run_py"][name]
        lines.append(f"{'2.' if name != 'torchrun' else '3.'} {name}: {'OK' if result['ok'] else 'FAILED'} in "
                     f"{result['seconds']} s: {result['command']}")
        if name != "evaluate":
            lines.append(f"     context: {result['device_context']}; epoch {result['epoch_frames_per_s']} frames/s, "
                         f"data wait {result['data_wait_percent']} %")
        lines.append(f"     final MPJPE {result['final_mpjpe_mm']} mm")
        lines += [f"     problem: {problem}" for problem in result["problems"]]
    lines.append(f"   DataParallel: {report['run_py']['data_parallel']}")
    lines += ["", "4. throughput (frames/s, time per call, peak GPU memory)"]
    for row in report["throughput"]:
        variant = f"{row['mode']:9s} {row['dtype']} {'compiled' if row['compiled'] else 'eager   '}"
        lines.append(f"   {variant} {row['preset']:10s} {_cell(row)}")
    lines.append("   ratios to mixste: " + ", ".join(
        f"{r['preset']} {r['mode']} {r['dtype']}{' compiled' if r['compiled'] else ''} {r['vs_mixste']:.2f}x"
        for r in report["ratios"]))
    for name, goal in report["goals"].items():
        values = ", ".join(f"{k} {v:,.2f}" for k, v in goal["values"].items()) or "not measured"
        verdict = {True: "met", False: "NOT met", None: "not applicable (paper configuration on a GPU only)"}
        lines.append(f"   goal {name} {goal['goal']}: {verdict[goal['met']]} ({values})")
    lines += ["", f"checks: {', '.join(f'{k} {v}' for k, v in report['checks'].items())}; "
              f"{'all passed' if report['ok'] else 'FAILED'} ({report['seconds']:.0f} s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    mode = "smoke" if args.smoke else "full"
    device = torch.device("cuda", 0) if torch.cuda.is_available() and not args.smoke else torch.device("cpu")
    if args.smoke:  # one thread per process: the CI machine's cores are shared, and oversubscription is far slower
        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    frames, channels, depth = MODES[mode][:3]
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        report = {"mode": mode, "device": str(device), "device_name": name, "torch": torch.__version__,
                  "shape": {"frames": frames, "channels": channels, "depth": depth,
                            "clips_per_step": max(1, SEED_BATCH_FRAMES // frames)}}
        report["correctness"] = check_fixture(Path(args.fixtures), device)
        report["run_py"] = check_run_py(device, mode, work)
        rows = throughput((frames, channels, depth), device, args.steps, started + args.time_limit)
        report["throughput"] = rows
        report["ratios"], report["goals"] = ratios_and_goals(rows, mode == "full" and device.type == "cuda")
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    report["checks"] = {"fixture": report["correctness"]["ok"],
                        **{name: report["run_py"][name]["ok"] for name in ("train", "evaluate", "torchrun")},
                        "throughput": all("error" not in row for row in rows)}
    report["ok"] = all(report["checks"].values())
    report["seconds"] = time.perf_counter() - started
    print(format_report(report), flush=True)
    if args.output:
        atomic_write_json(args.output, report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
