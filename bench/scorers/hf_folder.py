"""The model folders of the model-based metrics (`--metric-model-dir DIR`): DIR/<name>, a Hugging Face model
folder as `save_pretrained` writes it. Shared checks and loading, each failure a ConfigError naming the path."""
from __future__ import annotations

from pathlib import Path

from bench.config import ConfigError


def expected(name: str) -> str:
    return (f"a Hugging Face model folder (config.json, model weights and tokenizer files, as written by "
            f"save_pretrained) of {name}")


def check_folder(model_dir: str | Path, name: str, metric: str, model_type: str, type_hint: str):
    """(DIR/name, its config) after the cheap checks: the folder, a readable config.json, the model type."""
    from transformers import AutoConfig

    path = Path(model_dir) / name
    if not path.is_dir():
        raise ConfigError(f"--metric-model-dir {model_dir}: no {name}/ folder at {path}; "
                          f"{metric} expects {expected(name)}")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: no config.json; {metric} expects {expected(name)}")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}/config.json cannot be read ({exc}); {metric} expects {expected(name)}") from exc
    if config.model_type != model_type:
        raise ConfigError(f"{path}/config.json: model_type {config.model_type!r}; {metric} {type_hint} "
                          f"('{model_type}')")
    return path, config


def load_folder(path: Path, name: str, metric: str):
    """(tokenizer, model in eval mode) from a checked folder."""
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot load the tokenizer ({exc}); {metric} expects {expected(name)}") from exc
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot load the model weights ({exc}); {metric} expects {expected(name)}") from exc
    return tokenizer, model.eval()


def load_pretrained(ref: str | Path, *, metric: str, model_type: str, type_hint: str, head: bool = False,
                    local_only: bool, cache_dir: str | Path | None = None, adapt_config=None):
    """(config, tokenizer, model in eval mode) from a Hub id or folder `ref` (`head`: the model with its
    sequence-classification head, else the bare encoder; `adapt_config(config)` may change the config before
    the model is built). OSError when the files cannot be had (not cached, Hub unreachable); ConfigError when
    they are there but are not the expected model."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    kwargs = dict(local_files_only=local_only, cache_dir=str(cache_dir) if cache_dir is not None else None)
    config = AutoConfig.from_pretrained(str(ref), **kwargs)
    if config.model_type != model_type:
        raise ConfigError(f"{ref}: model_type {config.model_type!r}; {metric} {type_hint} ('{model_type}')")
    if adapt_config is not None:
        adapt_config(config)
    tokenizer = AutoTokenizer.from_pretrained(str(ref), **kwargs)
    auto = AutoModelForSequenceClassification if head else AutoModel
    model = auto.from_pretrained(str(ref), config=config, **kwargs)
    return config, tokenizer, model.eval()
