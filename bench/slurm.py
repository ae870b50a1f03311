"""`peft-bench grid --executor slurm`: one submitit job per run, resources from the preset.

The job function is `job(spec_dict, ...)`: it rebuilds the RunSpec and calls the same `run_one` as the local
executor, so a job writes the same run folder. A run that starts from another (init_from) is submitted with
`--dependency=afterany:<job id>` (afterany: if the dependency failed, the dependent runs and records a clear
failure instead of waiting forever). Executors without dependencies (submitit's local and debug executors,
used in tests) wait for the dependency's job before submitting the dependent one.
"""
from __future__ import annotations

from pathlib import Path

from bench.results import rows_status
from bench.spec import RunSpec


def job(spec_dict: dict, results_dir: str, data_dir: str | None, model_dir: str | None) -> str:
    """Run one spec (inside a Slurm job or a submitit local process); returns the run's status."""
    from bench.runner import run_one

    spec = RunSpec.from_dict(spec_dict)
    rows = run_one(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir, progress=False)
    return rows_status(rows)


def make_executor(preset: str, resources, *, folder: Path, cluster: str | None = None):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = dict(name=f"peft-bench-{preset}", timeout_min=int(resources.hours * 60), cpus_per_task=resources.cpus,
                  mem_gb=resources.mem_gb, nodes=1, tasks_per_node=1)
    if resources.gpus:
        params["gpus_per_node"] = resources.gpus
    if resources.partition:
        params["slurm_partition"] = resources.partition
    executor.update_parameters(**params)
    return executor


def submit(specs: list[RunSpec], preset: str, resources, *, results_dir="results", data_dir=None, model_dir=None,
           cluster: str | None = None, folder: Path | None = None) -> list:
    """Submit every spec (already ordered, dependencies first; done runs already removed). Returns the jobs."""
    folder = Path(folder or Path(results_dir) / "runs" / preset / "_submitit")
    executor = make_executor(preset, resources, folder=folder, cluster=cluster)
    slurm = executor.cluster == "slurm"
    args = (str(results_dir), None if data_dir is None else str(data_dir), None if model_dir is None else str(model_dir))
    jobs: dict[str, object] = {}
    out = []
    for spec in specs:
        dep = jobs.get(spec.init_from) if spec.init_from else None
        extra = {}
        if dep is not None:
            if slurm:
                extra = {"slurm_additional_parameters": {"dependency": f"afterany:{dep.job_id}"}}
            else:
                dep.wait()
        if slurm:
            executor.update_parameters(slurm_additional_parameters=extra.get("slurm_additional_parameters", {}))
        job_ = executor.submit(job, spec.to_dict(), *args)
        jobs[spec.run_id] = job_
        out.append(job_)
    return out
