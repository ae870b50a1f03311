"""What the preflight's parts share: one `Problem` per thing that cannot be had, and where the Hub is."""
from __future__ import annotations

import os
from dataclasses import dataclass

from bench.config import ConfigError


@dataclass(frozen=True)
class Problem:
    what: str      # "task sst2, split train" | "model roberta-base" | "metric bleurt (DART), model ..."
    where: str     # where it was looked for
    why: str       # what is wrong
    fix: str       # what to set

    def line(self) -> str:
        return f"{self.what}: {self.why} [{self.where}]; {self.fix}"


class PreflightError(ConfigError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"preflight (nothing was run): {problems[0].line()}")
            return
        lines = "\n".join(f"  {p.line()}" for p in problems)
        super().__init__(f"preflight: {len(problems)} of the grid's datasets/models cannot be had; nothing was "
                         f"run:\n{lines}")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


OFFLINE_FIX = ("HF_HUB_OFFLINE=1: fill the cache online first (or unset HF_HUB_OFFLINE), or pass a local copy "
               "with --data-dir (make: DATA_DIR=)")
OFFLINE_MODEL_FIX = ("HF_HUB_OFFLINE=1: fill the cache online first (huggingface-cli download REPO), or pass "
                     "--model-dir (make: MODEL_DIR=) with a from_pretrained folder")


def hub_fix(kind: str) -> str:
    flag = "--data-dir (make: DATA_DIR=)" if kind == "data" else "--model-dir (make: MODEL_DIR=)"
    return (f"check the repo id and revision; set HF_TOKEN if it is gated or private; offline, set "
            f"HF_HUB_OFFLINE=1 with a filled cache or pass {flag}")


def hub_error(exc: BaseException) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, GatedRepoError):
        return "the repository is gated: HF_TOKEN must belong to an account with access"
    if isinstance(exc, RevisionNotFoundError):
        return "the revision does not exist"
    if isinstance(exc, RepositoryNotFoundError):
        return "the repository does not exist (or is private: then HF_TOKEN must grant access)"
    text = str(exc).strip().splitlines()
    return f"the Hub did not answer ({type(exc).__name__}: {text[0] if text else ''})"


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def missing_roles(need: list[tuple[str, tuple[str, ...]]], has) -> list[str]:
    """The roles of `need` ((role, alternatives), an alternative `a+b` meaning both files) that `has(file)` lacks."""
    out = []
    for role, alternatives in need:
        if not any(all(has(f) for f in alt.split("+")) for alt in alternatives):
            out.append(f"{role} ({' or '.join(alternatives)})")
    return out


def hub_files(repo_id: str) -> set[str]:
    """The file names of a Hub model repository (one metadata request); raises what huggingface_hub raises."""
    from huggingface_hub import HfApi

    return {s.rfilename for s in HfApi().model_info(repo_id).siblings or []}


def cached_file(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename)
    return path if isinstance(path, str) else None
