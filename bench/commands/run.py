"""`peft-bench run --model M --task T --method METHOD [--set ...]`: train and evaluate one run.

The run goes to results/runs/adhoc/<run_id>/ (a finished run is not redone unless --force).
"""
from __future__ import annotations

import sys


def run(args) -> int:
    if args.track:
        import os

        from bench.trackers import ENV

        os.environ[ENV] = args.track          # inherited by worker processes and Slurm jobs
    from dataclasses import replace

    from bench.grid import validate
    from bench.runner import run_one
    from bench.spec import RunSpec, TrainConfig, apply_overrides, resolve

    spec = RunSpec(model=args.model, task=args.task, method=args.method, train=TrainConfig(), seed=args.seed,
                   preset="adhoc", label=args.method)
    spec = resolve(apply_overrides(spec, args.overrides))
    if args.save_state:
        spec = replace(spec, save_state=True)
    validate([spec], data_dir=args.data_dir, model_dir=args.model_dir)
    _check_device(args.cpu)
    print(f"run {spec.run_id}: {spec.model} {spec.task} {spec.method} {spec.method_config}", flush=True)
    rows = run_one(spec, results_dir=args.results_dir, data_dir=args.data_dir, model_dir=args.model_dir,
                   progress=sys.stderr.isatty(), force=args.force)
    from bench.distributed import process_index

    if rows[0].get("status") != "ok":     # any process: the launcher then ends the others
        print(f"FAILED: {rows[0].get('error')}", file=sys.stderr)
        return 1
    if process_index() != 0:              # `accelerate launch`: the first process reports
        return 0
    first = rows[0]
    print(f"params trained {first['params_trained']:,} stored {first['params_stored']:,} "
          f"head {first['params_head']:,} total {first['params_total']:,} ({first['params_percent']:.4f}%)")
    print(f"train {first['train_seconds']}s, {first['train_examples_per_s']} examples/s, "
          f"{first['train_tokens_per_s']} tokens/s, peak {first['peak_mem_mb']} MB; best epoch {first['best_epoch']}")
    for r in rows:
        value = r["value"]
        shown = f"{value:.4f}" if isinstance(value, float) else (value or f"(none: {r['note']})")
        print(f"{r['split']:<16} {r['metric']:<12} {shown}")
    return 0


def _check_device(cpu: bool) -> None:
    """Where nvidia-smi lists GPUs the run trains on one, or stops here (one line, exit 2, no run folder) when
    torch cannot use it; `--cpu` trains on the CPU instead."""
    import os

    from bench.devices import gpu_request

    if cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return
    gpu_request("", cpu=False)


def register(parser) -> None:
    parser.add_argument("--model", required=True, help="model name (peft-bench ls models)")
    parser.add_argument("--task", required=True, help="task name (peft-bench ls tasks)")
    parser.add_argument("--method", required=True, help="method name (peft-bench ls methods)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="method.<field>=..., train.<field>=..., decoding.<field>=..., seed=...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="local copies of the datasets (else the Hub)")
    parser.add_argument("--model-dir", default=None, help="local copies of the models (else the Hub)")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--save-state", action="store_true", help="keep the best trained state (state.pt)")
    parser.add_argument("--force", action="store_true", help="rerun even if this run already finished")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even where nvidia-smi lists GPUs")
    parser.add_argument("--track", choices=("tensorboard", "wandb"), default=None,
                        help="live metrics of every run through accelerate's trackers (off by default)")
    parser.set_defaults(func=run)
