"""Decoding: `protocol` (the papers' decoding settings as data, torch-free), `generate` (batched generation for
decoder models) and `beam` (our batched beam search with shared source keys and values)."""
from bench.decode.protocol import LORA_GPT2, PREFIX_TUNING, Decoding

__all__ = ["Decoding", "PREFIX_TUNING", "LORA_GPT2"]
