"""Tokenisation and batching: whole splits tokenised in one fast-tokenizer call, features kept as compact
numpy arrays, batches padded per batch (dynamic) and grouped by length, or padded to a fixed length for
baseline comparisons.

GPT-2 training format (Prefix-Tuning's data2text / webnlg / triples datasets): the text
`' {source} {sep} {target} {eos}'` with sep = eos = `<|endoftext|>`, i.e. the ids of `' ' + source + ' '`,
the separator id, the ids of `' ' + target + ' '`, the EOS id; loss on target and EOS only (labels -100 on
the source and the separator). The separator is the tokenizer's BOS token (GPT-2: `<|endoftext|>`, id 50256),
as `bos_tok = tokenizer.bos_token` there. Encoding the pieces separately gives the same ids as encoding the
whole string with a tokenizer that keeps the spaces around `<|endoftext|>` (GPT-2's special tokens do not
strip), and does not depend on the tokenizer splitting special tokens out of text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from bench.config import ConfigError
from bench.data.examples import ClassificationExample, GenerationExample, training_pairs
from bench.tasks import Task, get_task
from methods.base import IGNORE_INDEX  # label of positions without loss
SOURCE_TEMPLATE = " {} "            # source text before the separator (Prefix-Tuning: ' {} {} '.format(src, bos))
TARGET_TEMPLATE = " {} "            # target text before EOS (Prefix-Tuning: tgt + ' {}'.format(eos), after ' ')
MEGABATCH = 50                      # length grouping: sort within chunks of MEGABATCH * batch_size examples


@dataclass(frozen=True)
class Encoded:
    """Tokenised examples. `features[name]` is a list of 1-D int arrays (one per example) for sequences
    (input_ids, attention_mask, token_type_ids, generation labels) or one 1-D array for classification
    labels (int64 for classify, float32 for regress). `n_truncated`: examples cut to `max_length`."""
    features: dict[str, list[np.ndarray] | np.ndarray]
    n_truncated: int
    max_length: int | None
    lengths: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.lengths)


def _arrays(seqs: Sequence[Sequence[int]], dtype=np.int32) -> list[np.ndarray]:
    return [np.asarray(s, dtype=dtype) for s in seqs]


def separator_id(tokenizer) -> int:
    """The separator between source and target: the tokenizer's BOS token (EOS when it has no BOS)."""
    sep = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if sep is None:
        raise ConfigError(f"{type(tokenizer).__name__} has neither a BOS nor an EOS token; the generation "
                          f"format 'source <sep> target <eos>' needs one")
    return int(sep)


def _eos_id(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"{type(tokenizer).__name__} has no EOS token; generation targets end with one")
    return int(tokenizer.eos_token_id)


def encode_classification(tokenizer, task: str | Task, examples: Sequence[ClassificationExample],
                          max_length: int | None = None) -> Encoded:
    """Tokenise sentence (pairs) with the tokenizer's special tokens; pairs are truncated longest-first to
    `max_length` (default: the task's). Labels are omitted when every example is unlabelled (test sets)."""
    task = get_task(task)
    max_length = max_length or task.max_length
    if not examples:
        raise ConfigError(f"task {task.name}: no examples to encode")
    a = [ex.text_a for ex in examples]
    pairs = examples[0].text_b is not None
    b = [ex.text_b for ex in examples] if pairs else None
    if pairs and any(t is None for t in b):
        raise ConfigError(f"task {task.name}: some examples have a second sentence and some do not")
    full = tokenizer(a, b, truncation=False, verbose=False) if pairs else tokenizer(a, truncation=False, verbose=False)
    long_rows = [i for i, ids in enumerate(full["input_ids"]) if len(ids) > max_length]
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in full]
    feats = {k: list(full[k]) for k in names}
    if long_rows:
        cut_a = [a[i] for i in long_rows]
        cut = (tokenizer(cut_a, [b[i] for i in long_rows], truncation="longest_first", max_length=max_length)
               if pairs else tokenizer(cut_a, truncation=True, max_length=max_length))
        for j, i in enumerate(long_rows):
            for k in names:
                feats[k][i] = cut[k][j]
    features: dict = {k: _arrays(v, np.int8 if k != "input_ids" else np.int32) for k, v in feats.items()}
    labels = [ex.label for ex in examples]
    if any(label is not None for label in labels):
        if any(label is None for label in labels):
            raise ConfigError(f"task {task.name}: some examples are labelled and some are not")
        dtype = np.float32 if task.kind == "regress" else np.int64
        features["labels"] = np.asarray(labels, dtype=dtype)
    lengths = np.fromiter((len(x) for x in features["input_ids"]), dtype=np.int64, count=len(examples))
    return Encoded(features=features, n_truncated=len(long_rows), max_length=max_length, lengths=lengths)


def _encode_texts(tokenizer, texts: Sequence[str], template: str) -> list[list[int]]:
    return tokenizer([template.format(t) for t in texts], add_special_tokens=False, verbose=False)["input_ids"]


def encode_generation_train(tokenizer, task: str | Task, examples: Sequence[GenerationExample],
                            max_length: int | None = None) -> Encoded:
    """One training sequence per reference: `source <sep> target <eos>`, labels -100 on source and separator.
    Sequences longer than `max_length` (default: the task's) are cut from the right, as the original
    line-by-line datasets did (`truncation=True, max_length=block_size`), and counted in `n_truncated`."""
    task = get_task(task)
    max_length = max_length or task.max_length
    sep, eos = separator_id(tokenizer), _eos_id(tokenizer)
    pairs = training_pairs(examples)
    if not pairs:
        raise ConfigError(f"task {task.name}: no (source, reference) pairs to encode")
    sources = list(dict.fromkeys(s for s, _ in pairs))          # each distinct source tokenised once
    src_ids = dict(zip(sources, _encode_texts(tokenizer, sources, SOURCE_TEMPLATE)))
    tgt_ids = _encode_texts(tokenizer, [t for _, t in pairs], TARGET_TEMPLATE)
    input_ids, labels, n_truncated = [], [], 0
    for (source, _), target in zip(pairs, tgt_ids):
        prompt = src_ids[source] + [sep]
        ids = prompt + target + [eos]
        lab = [IGNORE_INDEX] * len(prompt) + target + [eos]
        if len(ids) > max_length:
            ids, lab = ids[:max_length], lab[:max_length]
            n_truncated += 1
        input_ids.append(ids)
        labels.append(lab)
    features = {
        "input_ids": _arrays(input_ids),
        "attention_mask": [np.ones(len(x), dtype=np.int8) for x in input_ids],
        "labels": _arrays(labels),
    }
    lengths = np.fromiter((len(x) for x in input_ids), dtype=np.int64, count=len(input_ids))
    return Encoded(features=features, n_truncated=n_truncated, max_length=max_length, lengths=lengths)


def encode_generation_sources(tokenizer, task: str | Task, examples: Sequence[GenerationExample]) -> list[list[int]]:
    """The decoding prompt of each input: ids of `' ' + source + ' '` then the separator (one per example)."""
    get_task(task)
    sep = separator_id(tokenizer)
    ids = _encode_texts(tokenizer, [ex.source for ex in examples], SOURCE_TEMPLATE)
    return [list(x) + [sep] for x in ids]


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of example positions.

    shuffle + group_by_length: a seeded permutation, cut into megabatches of MEGABATCH * batch_size, each
    sorted by length (longest first) and cut into batches; batch order shuffled, the longest batch first
    (so that an out-of-memory error shows at step one). shuffle alone: a seeded permutation in batches.
    No shuffle: file order, or longest first overall when grouping (evaluation; use the `idx` of each batch
    to restore the order). Each pass over the sampler advances its epoch (different, reproducible orders per
    epoch for one seed); `set_epoch` fixes it.

    `shard(rank, world)` (DDP: every process holds the same sampler and seed): each batch is cut into `world`
    contiguous parts and the process takes part `rank`, so the global batch is one process's batch. The short
    batch (when the examples do not fill the last one) goes last and is cut as evenly as it allows; one with
    fewer examples than processes is dropped, on every process and in `len()`.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, group_by_length: bool):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.group_by_length = group_by_length
        self.epoch = 0
        self.rank, self.world = 0, 1

    def shard(self, rank: int, world: int) -> None:
        if self.batch_size % world:
            raise ConfigError(f"batch_size {self.batch_size} does not split over {world} processes: under DDP "
                              f"every process takes batch_size / processes examples of each batch; use a multiple "
                              f"of {world}")
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, short = divmod(len(self.lengths), self.batch_size)
        return full + (short >= self.world if self.world > 1 else short > 0)

    def _chunks(self, order: np.ndarray) -> list[np.ndarray]:
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def batches(self, epoch: int) -> list[np.ndarray]:
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable") if self.group_by_length else np.arange(n)
            return self._chunks(order)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        if not self.group_by_length:
            return self._chunks(order)
        mega = bs * MEGABATCH
        batches = []
        for start in range(0, n, mega):
            chunk = order[start:start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += self._chunks(chunk)
        batches = [batches[i] for i in rng.permutation(len(batches))]
        longest = max(range(len(batches)), key=lambda i: self.lengths[batches[i]].max())
        batches[0], batches[longest] = batches[longest], batches[0]
        return batches

    def _sharded(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size and len(b) >= self.world]
        return [np.array_split(b, self.world)[self.rank] for b in full + short]

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        self.epoch += 1
        batches = self.batches(epoch)
        for batch in self._sharded(batches) if self.world > 1 else batches:
            yield batch.tolist()


_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": IGNORE_INDEX}


class Collator:
    """Pads the sequences of a batch (right side) and stacks them into tensors; adds `idx`, the positions of
    the batch's examples in the Encoded (pop it before calling the model)."""

    def __init__(self, encoded: Encoded, pad_id: int, padding: str, max_length: int | None,
                 pad_to_multiple_of: int | None):
        self.encoded, self.pad_id, self.padding = encoded, pad_id, padding
        self.max_length, self.multiple = max_length, pad_to_multiple_of

    def __call__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        lengths = self.encoded.lengths[idx]
        if self.padding == "max_length":
            width = self.max_length
            if lengths.max() > width:
                raise ConfigError(f"padding='max_length': an example has {int(lengths.max())} tokens, more than "
                                  f"max_length={width}; encode with max_length={width} first")
        else:
            width = int(lengths.max())
            if self.multiple:
                width = -(-width // self.multiple) * self.multiple
        batch = {}
        for name, values in self.encoded.features.items():
            if isinstance(values, np.ndarray):   # one value per example: classification labels
                batch[name] = torch.from_numpy(values[idx])
                continue
            pad = self.pad_id if name == "input_ids" else _PAD_VALUES.get(name, 0)
            out = np.full((len(idx), width), pad, dtype=np.int64)
            for row, i in enumerate(idx):
                seq = values[i]
                out[row, :len(seq)] = seq
            batch[name] = torch.from_numpy(out)
        batch["idx"] = torch.as_tensor(idx, dtype=torch.long)
        return batch


def make_loader(encoded: Encoded, *, batch_size: int, pad_id: int, shuffle: bool, seed: int,
                padding: str = "dynamic", max_length: int | None = None, group_by_length: bool = True,
                pad_to_multiple_of: int | None = None, num_workers: int = 0) -> DataLoader:
    """A DataLoader of padded batches (dicts of tensors: the encoded features plus `idx`).

    padding="dynamic": each batch padded to its longest example (optionally rounded up to a multiple of
    `pad_to_multiple_of`); "max_length": every batch padded to `max_length` (default: the Encoded's), the
    fixed-shape policy of the baseline scripts. Sequence labels are padded with -100, attention masks with 0.
    """
    if padding not in ("dynamic", "max_length"):
        raise ConfigError(f"padding must be 'dynamic' or 'max_length', got {padding!r}")
    if padding == "max_length":
        max_length = max_length or encoded.max_length
        if max_length is None:
            raise ConfigError("padding='max_length' needs max_length")
    if len(encoded) == 0:
        raise ConfigError("make_loader: no examples")
    sampler = LengthGroupedBatchSampler(encoded.lengths, batch_size, shuffle=shuffle, seed=seed,
                                        group_by_length=group_by_length)
    collate = Collator(encoded, pad_id, padding, max_length, pad_to_multiple_of)
    return DataLoader(range(len(encoded)), batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
