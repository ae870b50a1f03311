"""A named model's architecture with random weights, for speed measurements at a real size without a download:
the registry's literal config (`bench.models.model_config`: real widths, depths and vocabulary size), built
directly on the device, with the model's own tokenizer when a local copy is given (`model_dir`), else the
family's byte-level tokenizer (`bench.tiny_tokenizer`: one token per byte, so texts are about four times longer
than in the real BPE/WordPiece vocabularies; the ids fit every real vocabulary)."""
from __future__ import annotations

import torch


def random_model(name: str, *, kind: str, num_labels: int = 2, device: str = "cpu", model_dir=None):
    """(model, tokenizer, tokenizer_name) for `name`'s architecture with random weights on `device`."""
    import transformers

    from bench.config import ConfigError
    from bench.models import load_tokenizer, model_config, model_info
    from bench.tiny_tokenizer import tiny_tokenizer

    info = model_info(name)
    if kind == "generate" and not info.decoder:
        raise ConfigError(f"model {name} ({info.family}) is not a decoder; kind 'generate' needs one")
    if model_dir is not None:
        tokenizer, tokenizer_name = load_tokenizer(name, model_dir), f"{name} (from {model_dir})"
    else:
        tokenizer, tokenizer_name = tiny_tokenizer(info.family), f"byte-level ({info.family} specials)"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = model_config(name, num_labels=num_labels, kind=kind)
    if len(tokenizer) > config.vocab_size:
        raise ConfigError(f"model {name}: tokenizer has {len(tokenizer)} tokens, the config's vocabulary "
                          f"{config.vocab_size}")
    for role in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, role, None)
        if value is not None:
            setattr(config, role, int(value))
    auto = transformers.AutoModelForCausalLM if kind == "generate" else \
        transformers.AutoModelForSequenceClassification
    with torch.device(device):
        model = auto.from_config(config)
    return model, tokenizer, tokenizer_name
