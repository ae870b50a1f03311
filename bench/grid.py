"""Planning and running a grid: validate every spec up front, order dependencies first, shard, skip done runs.

`plan(name, ...)` expands a preset (with `--set` overrides and filters) into resolved specs, checked before any
training: unknown model / task / method / field, a method that does not fit the model (checked on the meta
device), a dependency missing from the grid, and (with a data dir) every data file the runs will read.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from collections.abc import Callable, Iterable

from bench.config import ConfigError
from bench.results import rows_status, run_dir, run_status
from bench.spec import RunSpec, apply_overrides


# -- ordering and shards ----------------------------------------------------------------------------------------
def order(specs: list[RunSpec]) -> list[RunSpec]:
    """Dependencies before their dependents; otherwise the preset's order. Duplicate run_ids are an error."""
    by_id: dict[str, RunSpec] = {}
    for spec in specs:
        if spec.run_id in by_id:
            raise ConfigError(f"preset {spec.preset}: two runs resolve to the same run_id {spec.run_id} "
                              f"({spec.display} on {spec.task}, seed {spec.seed})")
        by_id[spec.run_id] = spec
    out, placed = [], set()

    def place(spec: RunSpec, chain: tuple[str, ...]) -> None:
        if spec.run_id in placed:
            return
        if spec.run_id in chain:
            raise ConfigError(f"preset {spec.preset}: dependency cycle through {spec.run_id}")
        if spec.init_from:
            dep = by_id.get(spec.init_from)
            if dep is None:
                raise ConfigError(f"run {spec.run_id} starts from {spec.init_from}, which is not in the grid")
            if not dep.save_state:
                raise ConfigError(f"run {spec.run_id} starts from {dep.run_id}, which does not save its state")
            place(dep, chain + (spec.run_id,))
        placed.add(spec.run_id)
        out.append(spec)

    for spec in specs:
        place(spec, ())
    return out


def root_of(spec: RunSpec, by_id: dict[str, RunSpec]) -> str:
    while spec.init_from and spec.init_from in by_id:
        spec = by_id[spec.init_from]
    return spec.run_id


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects I/N with 0 <= I < N, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard expects I/N with 0 <= I < N, got {text!r}")
    return i, n


def shard(specs: list[RunSpec], i: int, n: int) -> list[RunSpec]:
    """Runs of shard i of n. A run and everything that starts from it land in the same shard."""
    if n == 1:
        return specs
    by_id = {s.run_id: s for s in specs}
    roots: list[str] = []
    for s in specs:
        r = root_of(s, by_id)
        if r not in roots:
            roots.append(r)
    mine = {r for k, r in enumerate(roots) if k % n == i}
    return [s for s in specs if root_of(s, by_id) in mine]


# -- planning and validation ------------------------------------------------------------------------------------
def plan(name: str, *, overrides: Iterable[str] = (), tasks: Iterable[str] = (), methods: Iterable[str] = (),
         seeds: Iterable[int] = ()) -> list[RunSpec]:
    """The preset's runs: overridden, resolved, linked (once), ordered and filtered (keeping dependencies).
    No torch: method fields come from `bench.method_config`."""
    from bench.presets import get_preset
    from bench.spec import link, resolve

    specs = get_preset(name).specs(name)
    specs = order(link([resolve(s) for s in override_all(specs, list(overrides))]))
    tasks, methods, seeds = set(tasks), set(methods), set(seeds)
    if tasks or methods or seeds:
        for what, wanted, have in (("task", tasks, {s.task for s in specs}),
                                   ("method", methods, {s.method for s in specs}),
                                   ("seed", seeds, {s.seed for s in specs})):
            unknown = wanted - have
            if unknown:
                raise ConfigError(f"preset {name} has no {what} {', '.join(map(str, sorted(unknown)))}; "
                                  f"it has: {', '.join(map(str, sorted(have)))}")
        chosen = [s for s in specs if (not tasks or s.task in tasks) and (not methods or s.method in methods)
                  and (not seeds or s.seed in seeds)]
        specs = order(_with_dependencies(chosen, specs))
    return specs


def override_all(specs: list[RunSpec], overrides: list[str]) -> list[RunSpec]:
    """Apply `--set` to every run. `method.<field>` applies to the runs whose method has that field
    (`--set method.r=16` changes the LoRA runs of a grid that also holds FT runs); a field that no run's
    method has is an error. Dependencies are still named by what they are (linked after this)."""
    if not overrides:
        return specs
    from bench.spec import method_fields, parse_assignment

    method_keys = {parse_assignment(o)[0].partition(".")[2]: o for o in overrides if o.startswith("method.")}
    other = [o for o in overrides if not o.startswith("method.")]
    fields = {s.method: method_fields(s.method) for s in specs}
    for key in method_keys:
        if not any(key in f for f in fields.values()):
            have = "; ".join(f"{m}: " + ", ".join(sorted(f)) for m, f in fields.items())
            raise ConfigError(f"--set method.{key}: no method in this grid has a field {key!r} ({have})")
    return [apply_overrides(s, other + [o for k, o in method_keys.items() if k in fields[s.method]]) for s in specs]


def _with_dependencies(chosen: list[RunSpec], every: list[RunSpec]) -> list[RunSpec]:
    by_id = {s.run_id: s for s in every}
    keep = {s.run_id for s in chosen}
    for s in chosen:
        while s.init_from:
            keep.add(s.init_from)
            s = by_id[s.init_from]
    return [s for s in every if s.run_id in keep]


def validate(specs: list[RunSpec], *, data_dir=None, model_dir=None) -> None:
    """Everything that can be checked without training; ConfigError with a one-line message otherwise."""
    from bench.models import build_meta, model_info
    from bench.runner import check_train_split
    from bench.spec import method_object
    from bench.tasks import get_task

    checked: set = set()
    world = int(os.environ.get("WORLD_SIZE", "1"))      # under `accelerate launch` / torchrun
    for spec in specs:
        if spec.train.batch_size % world:
            raise ConfigError(f"train.batch_size = {spec.train.batch_size} does not split over {world} processes "
                              f"(each trains on batch_size / processes examples of a batch): use a multiple of {world}")
        task = get_task(spec.task)
        info = model_info(spec.model)
        if task.kind == "generate" and not info.decoder:
            raise ConfigError(f"task {task.name} is generation; model {spec.model} ({info.family}) is an encoder")
        if task.kind != "generate" and info.decoder:
            raise ConfigError(f"task {task.name} is {task.kind}; this suite runs decoder models "
                              f"({spec.model}: {info.family}) on generation tasks only")
        key = (spec.model, task.kind, task.num_labels, spec.method, repr(sorted(spec.method_config.items())))
        if key not in checked:
            checked.add(key)
            build_meta(spec.model, task.kind, method_object(spec), num_labels=max(task.num_labels, 1))
        try:
            check_train_split(spec, task)
        except ValueError as exc:
            raise ConfigError(f"run {spec.run_id}: {exc}") from None
        unknown_splits = set(spec.eval_splits) - set(task.splits) - {"train"}
        if unknown_splits:
            raise ConfigError(f"run {spec.run_id}: task {task.name} has no split {', '.join(sorted(unknown_splits))}")
        if spec.decoding:
            from bench.decode.protocol import Decoding

            unknown = set(spec.decoding) - {f.name for f in dataclasses.fields(Decoding)}
            if unknown:
                raise ConfigError(f"run {spec.run_id}: decoding has no field {', '.join(sorted(unknown))}")
        if model_dir is not None and not info.tiny:
            root = Path(model_dir)
            if not ((root / spec.model / "config.json").is_file() or (root / "config.json").is_file()):
                raise ConfigError(f"--model-dir {root}: no {spec.model}/config.json (a from_pretrained folder)")
    if data_dir is not None:
        check_data(specs, data_dir)


def check_data(specs: list[RunSpec], data_dir) -> None:
    """Load every split the runs read (train and the task's evaluated splits) once; DataError names the file."""
    from bench.data import load_split
    from bench.tasks import get_task

    root = Path(data_dir)
    if not root.is_dir():
        raise ConfigError(f"--data-dir {root}: not a directory")
    from bench.runner import eval_splits_of

    needed = {(s.task, split) for s in specs
              for split in (s.train.train_split, *eval_splits_of(s, get_task(s.task)))}
    for name, split in sorted(needed):
        if not load_split(get_task(name), split, root):
            raise ConfigError(f"--data-dir {root}: task {name}, split {split} has no examples")


# -- the plan a grid ran (collect reads it instead of replanning) ------------------------------------------------
PLAN_FILE = "plan.json"


def _slot(spec: RunSpec) -> str:
    return f"{spec.model}|{spec.task}|{spec.method}|{spec.display}|{spec.seed}"


def record_plan(specs: list[RunSpec], results_dir) -> None:
    """Note in results/runs/<preset>/plan.json which run each table cell (model, task, method, row, seed) ran
    last; a later grid of the same cells (other --set values, a changed preset) repoints them."""
    import fcntl
    import json

    from bench.results import write_atomic

    for preset in sorted({s.preset for s in specs}):
        path = Path(results_dir) / "runs" / preset / PLAN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                cells = json.loads(path.read_text())
            except (OSError, ValueError):
                cells = {}
            cells.update({_slot(s): s.to_dict() for s in specs if s.preset == preset})
            write_atomic(path, json.dumps(cells, indent=1, default=list) + "\n")   # in the grid's order


def planned(preset: str, results_dir, *, tasks=(), methods=(), seeds=()) -> list[RunSpec] | None:
    """The specs the grids of `preset` last ran, per table cell (None when no grid recorded a plan), in the
    preset's order (cells it no longer has last, as recorded), so that the CSV and the tables list rows as the
    preset does."""
    import json

    path = Path(results_dir) / "runs" / preset / PLAN_FILE
    try:
        cells = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    specs = [RunSpec.from_dict(d) for d in cells.values()]
    try:
        rank = {_slot(s): i for i, s in enumerate(plan(preset))}
    except ConfigError:                     # a preset that no longer expands: keep the recorded order
        rank = {}
    specs.sort(key=lambda s: rank.get(_slot(s), len(rank)))
    tasks, methods, seeds = set(tasks), set(methods), set(seeds)
    return [s for s in specs if (not tasks or s.task in tasks) and (not methods or s.method in methods)
            and (not seeds or s.seed in seeds)]


# -- local execution --------------------------------------------------------------------------------------------
def pending(specs: list[RunSpec], results_dir) -> list[RunSpec]:
    return [s for s in specs if run_status(run_dir(results_dir, s.preset, s.run_id)) != "ok"]


def run_local(specs: list[RunSpec], *, results_dir="results", data_dir=None, model_dir=None, progress=True,
              on_start: Callable[[int, int, RunSpec], None] | None = None,
              on_done: Callable[[RunSpec, list[dict], float], None] | None = None) -> dict:
    """Run every spec not yet done, in order, in this process, each under its lock (bench.locks). A run that
    another grid process holds is left to it and checked again at the end (run here if its owner died).
    Returns counts {ok, failed, skipped, blocked, elsewhere}."""
    import time

    from bench.executor import train_locked
    from bench.locks import is_locked, lock_path

    todo = pending(specs, results_dir)
    counts = {"ok": 0, "failed": 0, "skipped": len(specs) - len(todo), "blocked": 0, "elsewhere": 0}
    queue, deferred = list(todo), []
    k = 0
    while queue or deferred:
        if not queue:                      # only runs held by other processes are left: wait for one
            time.sleep(0.5)
            queue = [s for s in deferred if not is_locked(lock_path(results_dir, s.preset, s.run_id))]
            deferred = [s for s in deferred if s not in queue]
            continue
        spec = queue.pop(0)
        if run_status(run_dir(results_dir, spec.preset, spec.run_id)) == "ok":
            counts["elsewhere"] += 1
            continue
        if spec.init_from:
            dep = run_status(run_dir(results_dir, spec.preset, spec.init_from))
            if dep != "ok":
                if any(s.run_id == spec.init_from for s in deferred):
                    deferred.append(spec)  # its dependency is being trained elsewhere
                    continue
                counts["blocked"] += 1
                continue
        if on_start:
            on_start(k, len(todo), spec)
        start = time.perf_counter()
        state, rows = train_locked(spec, results_dir=results_dir, data_dir=data_dir, model_dir=model_dir,
                                   progress=progress)
        if state == "busy":
            deferred.append(spec)
            continue
        if state == "done":                # another process finished it while we waited for the lock
            counts["elsewhere"] += 1
            continue
        k += 1
        counts[rows_status(rows)] += 1
        if on_done:
            on_done(spec, rows, time.perf_counter() - start)
    return {k: v for k, v in counts.items() if v or k in ("ok", "failed", "skipped")}
