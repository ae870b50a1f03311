"""`peft-bench grid PRESET`: validate every run, then run what is not done (locally or through Slurm)."""
from __future__ import annotations

import sys
import time

from bench.config import ConfigError


def add_selection(parser) -> None:
    parser.add_argument("preset", help="preset name (peft-bench ls presets)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every run: method.<field>, train.<field>, decoding.<field>")
    parser.add_argument("--tasks", default="", help="comma-separated tasks to keep (dependencies are kept)")
    parser.add_argument("--methods", default="", help="comma-separated methods to keep")
    parser.add_argument("--seeds", default="", help="comma-separated seeds to keep")
    parser.add_argument("--results-dir", default="results", help="where runs/ and PRESET.csv live")


def selection(args) -> dict:
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    return dict(overrides=args.overrides, tasks=[t for t in args.tasks.split(",") if t.strip()],
                methods=[m for m in args.methods.split(",") if m.strip()], seeds=seeds)


def data_dir_of(args, preset):
    if args.data_dir is not None:
        return args.data_dir
    return None if preset.default_data_dir is None else str(preset.default_data_dir)


def run(args) -> int:
    from bench.grid import parse_shard, pending, plan, run_local, shard, validate
    from bench.preflight import check_resources
    from bench.presets import get_preset

    preset = get_preset(args.preset)
    i, n = parse_shard(args.shard)
    specs = shard(plan(args.preset, **selection(args)), i, n)
    data_dir = data_dir_of(args, preset)
    validate(specs)
    check_resources(specs, data_dir=data_dir, model_dir=args.model_dir)  # bench/preflight.py: before any run
    todo = pending(specs, args.results_dir)
    print(f"{args.preset}: {len(specs)} runs in this shard, {len(specs) - len(todo)} done, {len(todo)} to run")
    if args.executor == "slurm":
        from bench.slurm import submit

        jobs = submit(todo, args.preset, preset.resources, results_dir=args.results_dir, data_dir=data_dir,
                      model_dir=args.model_dir, cluster=args.cluster)
        for spec, job in zip(todo, jobs):
            print(f"submitted {job.job_id}  {spec.run_id}")
        if args.wait:
            states = [job.result() for job in jobs]
            failed = sum(s != "ok" for s in states)
            print(f"{len(states) - failed} ok, {failed} failed")
            return 1 if failed else 0
        return 0

    start = time.perf_counter()

    def on_start(k, total, spec):
        print(f"[{k + 1}/{total}] {spec.run_id}  {spec.model} {spec.task} {spec.display}", flush=True)

    def on_done(spec, rows, seconds):
        status = rows[0].get("status", "?")
        if status == "ok":
            shown = ", ".join(f"{r['split']} {r['metric']}={_fmt(r['value'])}" for r in rows[:4])
            print(f"    ok in {seconds:.1f}s: {shown}", flush=True)
        else:
            print(f"    FAILED in {seconds:.1f}s: {rows[0].get('error', '')}", flush=True)

    counts = run_local(specs, results_dir=args.results_dir, data_dir=data_dir, model_dir=args.model_dir,
                       progress=not args.no_progress and sys.stderr.isatty(), on_start=on_start, on_done=on_done)
    print(f"{args.preset}: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done "
          f"({time.perf_counter() - start:.1f}s)")
    return 1 if counts["failed"] else 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def register(parser) -> None:
    add_selection(parser)
    parser.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (0 <= I < N)")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local")
    parser.add_argument("--cluster", default=None, help=argparse_hidden())
    parser.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and report their status")
    parser.add_argument("--data-dir", default=None, help="local copies of the datasets (else the Hub)")
    parser.add_argument("--model-dir", default=None, help="local copies of the models (else the Hub)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS  # submitit cluster override (local / debug) used by the tests
