"""The held-out selection protocol, derived by `collect` from a run's per-epoch dev predictions. No torch import.

The papers (LoRA Table 2 and most PEFT papers) keep each run's best epoch on the dev set and report that same dev
set: the `dev` protocol, what the runner's rows hold. The `heldout` protocol selects without looking at the
examples it scores:

- the selection split is cut once per task into two halves by a hash of the task name and the example's index
  (`half_of`): the same halves for every run, model and seed of a task, independent of the number of examples
  (a prefix of the split keeps its halves);
- the epoch is selected on half A by the task's selection metric (the runner's rule: the first best epoch wins)
  and that epoch's predictions are kept for the examples of half B; the same the other way round;
- the two held-out halves are put back together into one prediction per example, in split order, and every metric
  of the split is computed once on that vector. One vector per run keeps correlation metrics (Matthews, Pearson,
  Spearman) sound (no mean of two half-size correlations) and is what the report's bootstrap resamples.

Runs with `select=final` made no choice on dev: they have one protocol, `final`, and no heldout rows.

Generation tasks (E2E, WebNLG, DART): an example is one input (an E2E meaning representation, a triple set) with
all its references, so the halves are halves of inputs and never part of an input's references. Selection uses
the task's dev metric (BLEU) on each half from per-input n-gram statistics computed once per epoch
(bench/scorers/bleu_stats.py: the same corpus BLEU as the scorer, summed over the half); the combined held-out
outputs are then scored once with the task's full scorer (E2E: BLEU, NIST, METEOR, ROUGE-L, CIDEr; WebNLG and
DART: BLEU, METEOR, TER; DART's model-based metrics are left to the runner). Without Java, BLEU comes from the
statistics and the Java metrics are empty with the reason.

Gold (labels, references) is dataset content: it stays out of version control. A run folder keeps it in
`predictions/epochs/<split>.gold.jsonl` (ignored by git) and its digest in `<split>.gold.id` (committed);
`collect --data-dir D` rebuilds the gold of a run folder that lacks it from the release files (the first n
examples of the split, as the runner evaluated them) and checks it against the digest. `collect` writes the
per-example predictions with gold ids only (`results/<preset>.predictions.jsonl`, committed) and the gold beside
them (`results/<preset>.gold.jsonl`, ignored by git), which the report reads.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

EPOCHS_DIR = "epochs"
HALF_KEY = "peft-bench heldout v1"   # part of every hash: changing it changes every task's halves


def epoch_file(folder: str | Path, split: str, epoch: int) -> Path:
    return Path(folder) / "predictions" / EPOCHS_DIR / f"{split}.{epoch}.txt"


def gold_file(folder: str | Path, split: str) -> Path:
    return Path(folder) / "predictions" / EPOCHS_DIR / f"{split}.gold.jsonl"


def gold_id_file(folder: str | Path, split: str) -> Path:
    return Path(folder) / "predictions" / EPOCHS_DIR / f"{split}.gold.id"


def gold_id(task: str, split: str, gold: list) -> str:
    """The digest that names a gold vector: sha1 of [task, split, gold] as JSON, 12 hex digits."""
    return hashlib.sha1(json.dumps([task, split, gold]).encode()).hexdigest()[:12]


def gold_values(task, examples) -> list | None:
    """One JSON value per example: its label, or its list of references; None when the split is unlabelled."""
    if task.kind == "generate":
        values = [list(getattr(ex, "references", ()) or ()) for ex in examples]
        labelled = bool(values) and all(values)
    else:
        values = [getattr(ex, "label", None) for ex in examples]
        labelled = bool(values) and all(v is not None for v in values)
    return values if labelled else None


class GoldSource:
    """The gold of a run folder that does not keep it (a clone: gold is not committed), rebuilt from the release
    files in `data_dir`: the first n examples of the split, the runner's `max_eval_examples` cut."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = data_dir
        self._splits: dict[tuple[str, str], list] = {}

    def get(self, task, split: str, n: int) -> list | None:
        from bench.data import load_split

        key = (task.name, split)
        if key not in self._splits:
            self._splits[key] = gold_values(task, load_split(task, split, self.data_dir)) or []
        values = self._splits[key]
        return values[:n] if len(values) >= n else None


def keep_epoch_predictions(folder: str | Path, split: str, epoch: int, predictions: list[str], examples,
                           task) -> None:
    """Called by the runner after each evaluation of the selection split: this epoch's prediction lines
    (`predictions/epochs/<split>.<epoch>.txt`) and, once, the split's gold (`<split>.gold.jsonl`: one JSON value
    per example, the label or the list of references); an unlabelled split gets no gold file."""
    from bench.results import write_atomic

    write_atomic(epoch_file(folder, split, epoch), "".join(p + "\n" for p in predictions))
    keep_gold(folder, split, examples, task)


def keep_gold(folder: str | Path, split: str, examples, task) -> None:
    """`predictions/epochs/<split>.gold.jsonl`, once: the labels, or each input's list of references. The runner
    also calls it for a generation task's other scored splits (test), whose predictions the report's bootstrap
    compares in the NLG table."""
    from bench.results import write_atomic

    gold = gold_file(folder, split)
    values = gold_values(task, examples)
    if values is not None and not gold.is_file():
        write_atomic(gold, "".join(json.dumps(v) + "\n" for v in values))
        write_atomic(gold_id_file(folder, split), gold_id(task.name, split, values) + "\n")


def half_of(task: str, index: int) -> int:
    """0 (half A) or 1 (half B): the lowest bit of sha256("peft-bench heldout v1|<task>|<index>")."""
    digest = hashlib.sha256(f"{HALF_KEY}|{task}|{index}".encode()).digest()
    return digest[0] & 1


def halves(task: str, n: int) -> list[int]:
    return [half_of(task, i) for i in range(n)]


def read_epochs(folder: str | Path, split: str) -> dict[int, list[str]]:
    """{epoch: prediction lines} of every per-epoch file of `split` in a run folder."""
    out = {}
    directory = Path(folder) / "predictions" / EPOCHS_DIR
    for path in directory.glob(f"{split}.*.txt") if directory.is_dir() else []:
        epoch = path.name[len(split) + 1:-len(".txt")]
        if epoch.isdigit():
            out[int(epoch)] = path.read_text(encoding="utf-8").splitlines()
    return dict(sorted(out.items()))


class GoldMissing(Exception):
    """A run folder has no gold file and no data to rebuild it from."""


def read_gold(folder: str | Path, split: str, task=None, source: GoldSource | None = None,
              n: int | None = None) -> list | None:
    """The split's gold kept in the run folder, else rebuilt by `source` (n examples) and checked against the
    folder's digest; None where the split kept none. GoldMissing where the folder names a digest but no source
    is given; ConfigError where the rebuilt gold is not the one the run was scored on."""
    path = gold_file(folder, split)
    id_path = gold_id_file(folder, split)
    if path.is_file():
        gold = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if task is not None and not id_path.is_file():      # folders from before the digest: it is added
            from bench.results import write_atomic

            write_atomic(id_path, gold_id(task.name, split, gold) + "\n")
        return gold
    if not id_path.is_file():
        return None
    if source is None or task is None or not n:
        raise GoldMissing(f"{folder}: no {split} gold (labels and references are not committed)")
    from bench.config import ConfigError

    want = id_path.read_text(encoding="utf-8").strip()
    gold = source.get(task, split, n)
    if gold is None or gold_id(task.name, split, gold) != want:
        raise ConfigError(f"{folder}: the {split} gold rebuilt from {source.data_dir} is not the one the run was "
                          f"scored on (digest {want}); the release files differ")
    return gold


def parse_predictions(kind: str, lines: list[str]) -> list:
    if kind == "generate":
        return list(lines)
    return [float(p) if kind == "regress" else int(p) for p in lines]


def half_scorer(task, epochs: dict[int, list], gold: list):
    """score(epoch, members) -> (value or None, higher_is_better) of the task's selection metric on a subset.
    Generation tasks: corpus BLEU from per-input statistics, computed once per epoch."""
    if task.kind == "generate":
        from bench.scorers.bleu_stats import bleu_statistics_many, corpus_bleu

        if task.select_metric != "bleu":
            raise ValueError(f"{task.name}: held-out selection of generation runs selects on bleu, the task "
                             f"selects on {task.select_metric!r}")
        stats = dict(zip(epochs, bleu_statistics_many(task.name, list(epochs.values()), gold)))
        return lambda epoch, members: (corpus_bleu(task.name, stats[epoch], members), True)
    from bench.scorers import score_classification

    def score(epoch, members):
        got = score_classification(task.name, [epochs[epoch][i] for i in members], [gold[i] for i in members])
        return got[task.select_metric].value, got[task.select_metric].higher_is_better
    return score


def select_epoch(epochs: dict[int, list], members: list[int], score) -> int:
    """The epoch whose predictions on the examples `members` score best by `score` (half_scorer)
    (ties: the earliest, as the runner's `improves`; an epoch whose score is undefined never beats one)."""
    best_epoch, best = None, None
    for epoch in epochs:
        value, higher = score(epoch, members)
        if best_epoch is None or (value is not None and (best is None or (value > best if higher else value < best))):
            best_epoch, best = epoch, value
    return best_epoch


def heldout_predictions(task, epochs: dict[int, list], gold: list) -> tuple[list, dict[int, int]]:
    """(one prediction per example, {half scored: epoch used}): half h gets the epoch selected on the other."""
    side = halves(task.name, len(gold))
    members = [[i for i, h in enumerate(side) if h == k] for k in (0, 1)]
    if not members[0] or not members[1]:
        raise ValueError(f"{task.name}: {len(gold)} examples leave a half empty; held-out selection needs both")
    score = half_scorer(task, epochs, gold)
    chosen = {1 - k: select_epoch(epochs, members[k], score) for k in (0, 1)}   # selected on k, scores 1-k
    return [epochs[chosen[side[i]]][i] for i in range(len(gold))], chosen


def score_heldout(task, split: str, preds: list, gold: list) -> dict:
    """{metric: Score} of the combined held-out predictions: the GLUE scorer, or the task's NLG scorer once on
    the whole split (no model-based metrics; without Java, BLEU from its statistics and the rest empty)."""
    from bench.scorers import ScorerError, score_classification, score_split

    if task.kind != "generate":
        return score_classification(task.name, preds, gold)
    from types import SimpleNamespace

    examples = [SimpleNamespace(references=tuple(refs)) for refs in gold]
    try:
        return score_split(task.name, split, preds, examples, learned=False)[split]
    except ScorerError as exc:
        from bench.scorers.bleu_stats import bleu_statistics, corpus_bleu
        from bench.scorers.generation import _score

        out = {"bleu": _score(task.name, "bleu", corpus_bleu(task.name, bleu_statistics(task.name, preds, gold)))}
        for name in task.metric_names:
            if name not in out and name not in LEARNED:
                out[name] = _score(task.name, name, None, f"not computed by collect: {exc}")
        return out


LEARNED = ("moverscore", "bertscore", "bleurt")   # DART's model-based metrics: torch and weights, runner only


def derive(folder: str | Path, rows: list[dict], source: GoldSource | None = None,
           ) -> tuple[list[dict], list[dict]]:
    """(rows to add, per-example records) for one completed ok run.

    Rows: for a `select=best` run with per-epoch predictions, a copy of each
    selection-split row with `selection=heldout` and the held-out value. Records: the per-example predictions
    behind the run's `dev`/`final` rows and behind its heldout rows, with the gold, for the report's bootstrap.
    """
    from bench.tasks import TASKS

    if not rows or rows[0].get("status") != "ok":
        return [], []
    task = TASKS.get(rows[0]["task"])
    if task is None:
        return [], []
    split = task.select_split
    own = rows[0].get("selection") or "dev"
    kept = Path(folder) / "predictions" / f"{split}.txt"
    lines = kept.read_text(encoding="utf-8").splitlines() if kept.is_file() else []
    gold = read_gold(folder, split, task, source, len(lines))
    others = _other_records(Path(folder), rows[0], task, own, source) if task.kind == "generate" else []
    if gold is None or not lines:
        return [], others
    records = [_record(rows[0], split, own, parse_predictions(task.kind, lines), gold), *others]
    epochs = {e: parse_predictions(task.kind, p) for e, p in read_epochs(folder, split).items()}
    epochs = {e: p for e, p in epochs.items() if len(p) == len(gold)}
    if own != "dev" or not epochs:
        return [], records
    preds, chosen = heldout_predictions(task, epochs, gold)
    scores = score_heldout(task, split, preds, gold)
    how = (f"heldout: half A scored with epoch {chosen[0]} (selected on half B), half B with epoch {chosen[1]} "
           f"(selected on half A)")
    added = []
    for row in rows:
        if row.get("split") != split or row.get("metric") not in scores:
            continue
        score = scores[row["metric"]]
        added.append({**row, "selection": "heldout", "value": "" if score.value is None else score.value,
                      "best_epoch": "", "note": f"{score.note}; {how}" if score.note else how})
    records.append(_record(rows[0], split, "heldout", preds, gold, epochs=[chosen[0], chosen[1]]))
    return added, records


def _other_records(folder: Path, row: dict, task, own: str, source: GoldSource | None = None) -> list[dict]:
    """A generation run's records of its other scored splits (test) that kept their gold: one protocol each."""
    out = []
    for path in sorted((folder / "predictions").glob("*.txt")):
        split = path.stem
        preds = path.read_text(encoding="utf-8").splitlines()
        gold = read_gold(folder, split, task, source, len(preds)) if split != task.select_split else None
        if gold is not None and len(preds) == len(gold):
            out.append(_record(row, split, own, preds, gold))
    return out


def _record(row: dict, split: str, selection: str, preds: list, gold: list, epochs=None) -> dict:
    rec = {"run_id": row["run_id"], "created_at": row.get("created_at", ""), "task": row["task"], "split": split,
           "selection": selection, "predictions": preds, "gold": gold}
    if epochs is not None:
        rec["epochs"] = epochs
    return rec


def write_predictions(path: str | Path, records: list[dict]) -> None:
    """`results/<preset>.predictions.jsonl`: one line per gold vector ({"gold_id", "task", "split", "n"}: its
    digest, no values), written once per distinct vector, then one line per run x protocol ({"run_id",
    "created_at", "task", "split", "selection", "gold_id", "predictions"[, "epochs"]}); regression values rounded
    to 6 digits. The gold values go beside it, to `<preset>.gold.jsonl` ({"gold_id", "gold"}; not committed)."""
    from bench.results import write_atomic

    lines, golds, seen = [], [], set()
    for rec in records:
        gold = rec["gold"]
        gid = gold_id(rec["task"], rec["split"], gold)
        if gid not in seen:
            seen.add(gid)
            lines.append(json.dumps({"gold_id": gid, "task": rec["task"], "split": rec["split"], "n": len(gold)}))
            golds.append(json.dumps({"gold_id": gid, "gold": gold}))
        out = {k: v for k, v in rec.items() if k != "gold"}
        out["predictions"] = [round(p, 6) if isinstance(p, float) else p for p in rec["predictions"]]
        out["gold_id"] = gid
        lines.append(json.dumps(out))
    write_atomic(path, "".join(line + "\n" for line in lines))
    write_atomic(gold_path(path), "".join(line + "\n" for line in golds))


def predictions_path(csv_path: str | Path) -> Path:
    """results/<preset>.csv -> results/<preset>.predictions.jsonl (beside it)."""
    path = Path(csv_path)
    return path.with_name(f"{path.stem}.predictions.jsonl")


def gold_path(predictions: str | Path) -> Path:
    """results/<preset>.predictions.jsonl -> results/<preset>.gold.jsonl (beside it; not committed)."""
    path = Path(predictions)
    return path.with_name(path.name.replace(".predictions.jsonl", ".gold.jsonl"))
