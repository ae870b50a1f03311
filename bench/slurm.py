"""`peft-bench grid --executor slurm`: submitit array jobs, one array per dependency wave.

Wave 0 holds the runs that start from nothing (or from a run already complete), wave k the runs whose
dependency is in wave k-1; each wave is one Slurm array (`executor.batch()`), submitted with
`--dependency=afterany:<array of wave k-1>` (afterany: a failed dependency makes the dependent record a clear
failure instead of waiting forever). Resources: GPUs per run, CPUs, memory, partition and account from the
preset's `Resources` or the command line; the time limit of a wave is the longest planned run in it times
MARGIN plus SLACK_MIN (bench.cost), unless `--time` is given. Executors without dependencies (submitit's local
and debug executors, used in tests) wait for a wave's jobs before submitting the next.

The job function is `job(spec_dict, ...)`: it rebuilds the RunSpec and trains it under its lock with the same
`run_one` as the local executor, so overlapping arrays never train a run twice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from bench.results import rows_status
from bench.spec import RunSpec

MARGIN = 1.5        # planned seconds x MARGIN ...
SLACK_MIN = 15      # ... + SLACK_MIN minutes = a wave's default time limit


def job(spec_dict: dict, results_dir: str, data_dir: str | None, model_dir: str | None, gpus: int = 0) -> str:
    """Run one spec (inside a Slurm job or a submitit local process); returns the run's status. A job that asked
    for `gpus` GPUs and whose torch sees none returns "failed: <what it saw>" without training (no run folder)."""
    from bench.executor import run_locked

    if gpus > 0:
        from bench.config import ConfigError
        from bench.devices import check_gpus, smi_gpus, torch_cuda

        try:
            check_gpus([], f"this Slurm job asked for {gpus} GPU(s)", smi_gpus(), torch_cuda())
        except ConfigError as exc:
            return f"failed: {exc}"
    spec = RunSpec.from_dict(spec_dict)
    rows = run_locked(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir)
    if rows is None:
        return "running elsewhere"
    return rows_status(rows)


def waves(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Dependency waves: a run lands one wave after the run it starts from (runs outside `specs` count as done)."""
    ids = {s.run_id for s in specs}
    depth: dict[str, int] = {}
    for s in specs:   # ordered: dependencies first
        depth[s.run_id] = depth[s.init_from] + 1 if s.init_from in ids else 0
    out: list[list[RunSpec]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for s in specs:
        out[depth[s.run_id]].append(s)
    return out


@dataclass(frozen=True)
class Request:
    """What each array task asks Slurm for."""

    gpus: int
    cpus: int
    mem_gb: int
    minutes: int
    partition: str = ""
    account: str = ""


def time_limit(wave: list[RunSpec], predicted: dict[str, float], fallback_hours: float) -> int:
    seconds = [predicted[s.run_id] for s in wave if s.run_id in predicted]
    if not seconds:
        return int(fallback_hours * 60)
    return int(math.ceil(max(seconds) * MARGIN / 60)) + SLACK_MIN


def make_executor(preset: str, request: Request, *, folder: Path, cluster: str | None = None):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = dict(name=f"peft-bench-{preset}", timeout_min=request.minutes, cpus_per_task=request.cpus,
                  mem_gb=request.mem_gb, nodes=1, tasks_per_node=1)
    if request.gpus:
        params["gpus_per_node"] = request.gpus
    if request.partition:
        params["slurm_partition"] = request.partition
    if request.account:
        params["slurm_account"] = request.account
    executor.update_parameters(**params)
    return executor


def describe(specs: list[RunSpec], preset: str, request: Request, predicted: dict[str, float],
             fixed_minutes: int | None = None) -> list[str]:
    """What `submit` would submit, one block per wave (for --dry-run)."""
    lines = []
    for k, wave in enumerate(waves(specs)):
        minutes = fixed_minutes or time_limit(wave, predicted, request.minutes / 60)
        dep = f", after wave {k - 1} (afterany)" if k else ""
        lines.append(f"wave {k}: array of {len(wave)} tasks, --gpus-per-node={request.gpus} "
                     f"--cpus-per-task={request.cpus} --mem={request.mem_gb}G --time={minutes}"
                     + (f" --partition={request.partition}" if request.partition else "")
                     + (f" --account={request.account}" if request.account else "") + dep)
        lines += [f"  {s.run_id}  {s.model} {s.task} {s.display}" for s in wave]
    return lines


def submit(specs: list[RunSpec], preset: str, resources, *, results_dir="results", data_dir=None, model_dir=None,
           cluster: str | None = None, folder: Path | None = None, predicted: dict[str, float] | None = None,
           gpus: int | None = None, partition: str | None = None, account: str | None = None,
           minutes: int | None = None) -> list:
    """Submit every spec (ordered, dependencies first; done runs already removed) as dependency-ordered array
    jobs. Returns the jobs in the order of `specs`."""
    folder = Path(folder or Path(results_dir) / "runs" / preset / "_submitit")
    request = request_of(resources, gpus=gpus, partition=partition, account=account)
    predicted = predicted or {}
    args = (str(results_dir), None if data_dir is None else str(data_dir),
            None if model_dir is None else str(model_dir))
    jobs: dict[str, object] = {}
    previous: list = []
    for wave in waves(specs):
        limit = minutes or time_limit(wave, predicted, resources.hours)
        executor = make_executor(preset, replace(request, minutes=limit), folder=folder, cluster=cluster)
        slurm = executor.cluster == "slurm"
        if previous:
            if slurm:
                array_id = str(previous[0].job_id).split("_")[0]
                executor.update_parameters(slurm_additional_parameters={"dependency": f"afterany:{array_id}"})
            else:
                for j in previous:
                    j.wait()
        with executor.batch():
            wave_jobs = [executor.submit(job, s.to_dict(), *args, request.gpus) for s in wave]
        jobs.update({s.run_id: j for s, j in zip(wave, wave_jobs)})
        previous = wave_jobs
    return [jobs[s.run_id] for s in specs]


def request_of(resources, *, gpus=None, partition=None, account=None) -> Request:
    return Request(gpus=resources.gpus if gpus is None else gpus, cpus=resources.cpus, mem_gb=resources.mem_gb,
                   minutes=int(resources.hours * 60), partition=partition or resources.partition,
                   account=account or getattr(resources, "account", ""))
