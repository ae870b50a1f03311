"""`peft-bench grid PRESET`: validate every run, then run what is not done (locally or through Slurm)."""
from __future__ import annotations

import sys
import time

from bench.commands.selection import add_selection, selection
from bench.config import ConfigError


def data_dir_of(args, preset):
    if args.data_dir is not None:
        return args.data_dir
    return None if preset.default_data_dir is None else str(preset.default_data_dir)


def _predicted(specs, todo, jobs: int = 1, device=None) -> tuple[dict, str]:
    """Planned seconds per run (bench.cost) and the line shown before the grid starts."""
    try:
        from bench.commands.plan import estimate, summary_line

        dev, runs, _, total = estimate(specs, device)
    except Exception as exc:  # noqa: BLE001 - an estimate is a convenience; the grid runs without it
        return {}, f"(no estimate: {type(exc).__name__}: {exc})"
    todo_s = sum(runs[s.run_id].seconds for s in todo)
    return {k: c.seconds for k, c in runs.items()}, summary_line(dev, total, todo_seconds=todo_s, jobs=jobs)


def run(args) -> int:
    if args.track:
        import os

        from bench.trackers import ENV

        os.environ[ENV] = args.track          # inherited by worker processes and Slurm jobs
    from bench.grid import parse_shard, pending, plan, record_plan, run_local, shard, validate
    from bench.preflight import check_resources, model_sources
    from bench.presets import get_preset

    preset = get_preset(args.preset)
    i, n = parse_shard(args.shard)
    specs = shard(plan(args.preset, **selection(args)), i, n)
    data_dir = data_dir_of(args, preset)
    validate(specs)
    check_resources(specs, data_dir=data_dir, model_dir=args.model_dir)  # bench/preflight/: before any run
    for model, source in model_sources(specs, args.model_dir).items():
        print(f"model {model}: {source}")
    todo = pending(specs, args.results_dir)
    slots = _slots(args)
    device = args.device
    if device is None and args.executor == "slurm":   # price the GPU the jobs will get
        device = "a100" if (args.gpus_per_run if args.gpus_per_run is not None else preset.resources.gpus) else "cpu"
    predicted, estimate_line = _predicted(specs, todo, len(slots), device)
    print(f"{args.preset}: {len(specs)} runs in this shard, {len(specs) - len(todo)} done, {len(todo)} to run")
    print(estimate_line, flush=True)
    if args.executor == "slurm":
        return _slurm(args, preset, todo, data_dir, predicted)
    record_plan(specs, args.results_dir)
    start = time.perf_counter()
    progress = not args.no_progress and sys.stderr.isatty()
    if len(slots) > 1 or slots[0].name.startswith("cuda"):      # on a GPU: every run in its own process
        counts = _parallel(args, specs, slots, data_dir, predicted, progress)
    else:
        def on_start(k, total, spec):
            print(f"[{k + 1}/{total}] {spec.run_id}  {spec.model} {spec.task} {spec.display}", flush=True)

        counts = run_local(specs, results_dir=args.results_dir, data_dir=data_dir, model_dir=args.model_dir,
                           progress=progress, on_start=on_start, on_done=_print_done)
    extra = "".join(f", {counts[k]} {k}" for k in ("blocked", "elsewhere") if counts.get(k))
    print(f"{args.preset}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done{extra} "
          f"({time.perf_counter() - start:.1f}s)")
    return 1 if counts["failed"] or counts.get("blocked") else 0


def _slots(args):
    """The executor's worker slots: GPUs from --devices (or GPU 0 where nvidia-smi lists GPUs), else --jobs CPU
    workers. Refused before any run folder exists when a GPU was asked for and torch would not get it."""
    from bench.devices import gpu_request, smi_gpus
    from bench.executor import cpu_slots, gpu_slots

    if args.jobs < 1 or args.jobs_per_device < 1:
        raise ConfigError(f"--jobs and --jobs-per-device expect integers >= 1, got {args.jobs} / "
                          f"{args.jobs_per_device}")
    if args.executor == "slurm":       # the jobs get their GPUs from Slurm
        return cpu_slots(1)
    if args.cpu:                       # the runs trained in this process see no GPU either
        import os

        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    gpus = [] if args.cpu else smi_gpus()
    if args.jobs > 1 and (gpus or args.devices):
        raise ConfigError(f"--jobs {args.jobs} runs CPU workers"
                          + (f", and nvidia-smi lists {len(gpus)} GPU(s) here" if gpus else "")
                          + ": use --devices 0,1,... (and --jobs-per-device K) for GPU workers, or --cpu to train "
                          "on the CPU")
    devices = gpu_request(args.devices, cpu=args.cpu, gpus=gpus)
    if devices is None:
        return cpu_slots(args.jobs)
    return gpu_slots(devices, args.jobs_per_device)


def _parallel(args, specs, slots, data_dir, predicted, progress) -> dict:
    from bench.executor import GridInterrupted, run_grid

    def on_event(event, spec, info):
        if event == "start" and not progress:
            print(f"start {spec.run_id} on {info['slot']}  {spec.model} {spec.task} {spec.display}", flush=True)
        elif event in ("ok", "failed"):
            _print_done(spec, info.get("rows") or [{"status": "failed", "error": f"exit {info.get('exit')}"}],
                        info["seconds"])
        elif event == "blocked":
            print(f"    not started {spec.run_id}: {info['error']}", flush=True)

    try:
        return run_grid(specs, slots=slots, results_dir=args.results_dir, data_dir=data_dir, model_dir=args.model_dir,
                        predicted=predicted, on_event=on_event, progress=progress)
    except GridInterrupted as stop:
        c = stop.counts
        print(f"interrupted: {c['ok']} finished runs kept, {c.get('interrupted', 0)} interrupted runs will rerun",
              file=sys.stderr)
        raise


def _slurm(args, preset, todo, data_dir, predicted) -> int:
    from bench.slurm import describe, request_of, submit

    request = request_of(preset.resources, gpus=args.gpus_per_run, partition=args.partition, account=args.account)
    if args.dry_run:
        for line in describe(todo, args.preset, request, predicted, args.time):
            print(line)
        return 0
    jobs = submit(todo, args.preset, preset.resources, results_dir=args.results_dir, data_dir=data_dir,
                  model_dir=args.model_dir, cluster=args.cluster, predicted=predicted, gpus=args.gpus_per_run,
                  partition=args.partition, account=args.account, minutes=args.time)
    for spec, job in zip(todo, jobs):
        print(f"submitted {job.job_id}  {spec.run_id}")
    if args.wait:
        states = [job.result() for job in jobs]
        failed = sum(s != "ok" for s in states)
        print(f"{len(states) - failed} ok, {failed} failed")
        return 1 if failed else 0
    return 0


def _print_done(spec, rows, seconds):
    status = rows[0].get("status", "?") if rows else "?"
    if status == "ok":
        shown = ", ".join(f"{r['split']} {r['metric']}={_fmt(r['value'])}" for r in rows[:4])
        print(f"    ok in {seconds:.1f}s: {spec.run_id} {shown}", flush=True)
    else:
        print(f"    FAILED in {seconds:.1f}s: {spec.run_id} {rows[0].get('error', '') if rows else ''}", flush=True)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def register(parser) -> None:
    add_selection(parser)
    parser.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (0 <= I < N)")
    parser.add_argument("--jobs", type=int, default=1, help="CPU: runs at a time, each in its own process")
    parser.add_argument("--devices", default="",
                        help="GPUs to keep busy: indices among the visible ones (0,1,2,3) or all; one process per run")
    parser.add_argument("--cpu", action="store_true",
                        help="train on the CPU even where nvidia-smi lists GPUs (then --jobs N CPU workers)")
    parser.add_argument("--jobs-per-device", type=int, default=1, help="runs at a time on each GPU of --devices")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--device", default=None,
                        help="device the estimate prices: cpu, a100, h100, ... (default: this machine's; slurm: a100)")
    parser.add_argument("--gpus-per-run", type=int, default=None, help="slurm: GPUs per run (default: the preset's)")
    parser.add_argument("--partition", default=None, help="slurm partition (default: the preset's or the cluster's)")
    parser.add_argument("--account", default=None, help="slurm account")
    parser.add_argument("--time", type=int, default=None,
                        help="slurm time limit per run, minutes (default: the plan's estimate x 1.5 + 15 min)")
    parser.add_argument("--dry-run", action="store_true", help="slurm: print what would be submitted")
    parser.add_argument("--cluster", default=None, help=argparse_hidden())
    parser.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and report their status")
    parser.add_argument("--data-dir", default=None, help="local copies of the datasets (else the Hub)")
    parser.add_argument("--model-dir", default=None, help="local copies of the models (else the Hub)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--track", choices=("tensorboard", "wandb"), default=None,
                        help="live metrics of every run through accelerate's trackers (off by default)")
    parser.set_defaults(func=run)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS  # submitit cluster override (local / debug) used by the tests
