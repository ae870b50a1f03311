"""`peft-bench score TASK --hyps FILE [--refs FILE ...] [--data-dir DIR --split SPLIT] [--json]`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.config import ConfigError

UNITS = ("Units are the papers': E2E BLEU, METEOR and ROUGE-L in percent (x100), NIST and CIDEr raw; "
         "WebNLG and DART BLEU in percent, METEOR and TER as fractions (0-1, TER lower is better); "
         "GLUE metrics in percent. A metric that cannot be computed prints as '-' (null in --json) with the reason.")


def _read_lines(path: str, what: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not UTF-8 text ({exc})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return lines


def _number(text: str, where: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ConfigError(f"{where}: {text.strip()!r} is not a number (expected a class id or a score)") from None


def _load_examples(args):
    from bench.data import load_split

    if not args.split:
        raise ConfigError("give the references with --refs FILE ..., or a split to read them from with --split "
                          "(and --data-dir for a local copy)")
    return load_split(args.task, args.split, args.data_dir)


def _score_glue(args, hyps: list[str]):
    from bench.scorers import score_classification

    preds = [_number(h, f"{args.hyps} line {i + 1}") for i, h in enumerate(hyps)]
    if args.refs:
        if len(args.refs) != 1:
            raise ConfigError(f"{args.task}: give one --refs file of gold labels, not {len(args.refs)}")
        gold_lines = _read_lines(args.refs[0], "reference")
        if len(gold_lines) != len(hyps):
            raise ConfigError(f"{args.hyps} has {len(hyps)} lines but {args.refs[0]} has {len(gold_lines)}; "
                              "they must be line-aligned")
        labels = [_number(g, f"{args.refs[0]} line {i + 1}") for i, g in enumerate(gold_lines)]
    else:
        examples = _load_examples(args)
        if len(examples) != len(hyps):
            raise ConfigError(f"{args.hyps} has {len(hyps)} lines but {args.task} {args.split} has "
                              f"{len(examples)} examples")
        labels = [ex.label for ex in examples]
        if any(lab is None for lab in labels):
            raise ConfigError(f"{args.task} {args.split} has no gold labels (an unlabelled test split)")
    return {args.split or "scores": score_classification(args.task, preds, labels)}


def _score_nlg(args, hyps: list[str]):
    from bench.scorers import score_generation, score_split
    from bench.scorers.java import java_executable

    if args.task == "dart" and args.metric_model_dir is not None:
        from bench.scorers.model_based import check_metric_model_dir

        check_metric_model_dir(args.metric_model_dir)  # a bad folder fails before the slow scorers run
    if args.refs:
        slots = []
        for path in args.refs:
            lines = _read_lines(path, "reference")
            if len(lines) != len(hyps):
                raise ConfigError(f"{args.hyps} has {len(hyps)} lines but {path} has {len(lines)}; "
                                  "each --refs file must be line-aligned with the hypotheses")
            slots.append(lines)
        references = [[slot[i] for slot in slots] for i in range(len(hyps))]
        java_executable()  # METEOR needs Java: say so before any scoring starts
        return {"scores": score_generation(args.task, hyps, references, model_dir=args.metric_model_dir)}
    if args.split:
        java_executable()  # before a possibly slow dataset load
    examples = _load_examples(args)
    if len(examples) != len(hyps):
        raise ConfigError(f"{args.hyps} has {len(hyps)} lines but {args.task} {args.split} has "
                          f"{len(examples)} inputs; the hypotheses must be one line per input, in order")
    return score_split(args.task, args.split, hyps, examples, model_dir=args.metric_model_dir)


def _fmt(score) -> str:
    if score.value is None:
        return "-"
    return f"{score.value:.4f}" if score.scale != "percent" else f"{score.value:.2f}"


def _print_table(task: str, n: int, results: dict) -> None:
    groups = list(results)
    metrics = list(next(iter(results.values())))
    print(f"{task}: {n:,} hypotheses")
    first = max(len(m) for m in metrics) + 2
    header = f"{'metric':<{first}}  " + "  ".join(f"{g:>12}" for g in groups) + "  unit"
    print(header)
    notes = []
    for m in metrics:
        s0 = results[groups[0]][m]
        cells = "  ".join(f"{_fmt(results[g][m]):>12}" for g in groups)
        print(f"{m + ' ' + s0.arrow:<{first}}  {cells}  {s0.scale}")
        for g in groups:
            if results[g][m].value is None and results[g][m].note not in notes:
                notes.append(results[g][m].note)
                print(f"    {m}: {results[g][m].note}")


def run(args) -> int:
    from bench.scorers import ScorerError
    from bench.tasks import TASKS

    hyps = _read_lines(args.hyps, "hypothesis")
    try:
        if TASKS[args.task].kind == "generate":
            results = _score_nlg(args, hyps)
        else:
            results = _score_glue(args, hyps)
    except ScorerError as exc:
        print(f"peft-bench score: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        if len(results) == 1:
            (scores,) = results.values()
            payload = {m: s.value for m, s in scores.items()}
        else:
            payload = {g: {m: s.value for m, s in scores.items()} for g, scores in results.items()}
        for scores in results.values():
            for m, s in scores.items():
                if s.value is None:
                    print(f"{m}: {s.note}", file=sys.stderr)
        print(json.dumps(payload, indent=2))
    else:
        _print_table(args.task, len(hyps), results)
    return 0


def register(parser) -> None:
    from bench.tasks import TASKS

    parser.description = ("Score a hypothesis file with scorers that reproduce the official ones "
                          "(e2e-metrics, webnlg-automatic-evaluation, DART's run_eval_on_dart.sh, GLUE). " + UNITS)
    parser.add_argument("task", choices=list(TASKS), help="task to score")
    parser.add_argument("--hyps", required=True, metavar="FILE",
                        help="one hypothesis per line (for GLUE: one predicted class id, or score for stsb)")
    parser.add_argument("--refs", nargs="+", metavar="FILE",
                        help="reference files, one reference slot each, line-aligned with --hyps; a blank line "
                             "means no reference in that slot (for GLUE: one file of gold labels)")
    parser.add_argument("--data-dir", metavar="DIR", help="local copy of the dataset (default: the Hub)")
    parser.add_argument("--split", metavar="SPLIT",
                        help="take references from this split when --refs is not given (webnlg test: "
                             "scored as test-seen / test-unseen / test-all)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object metric -> value (webnlg test: nested per subset); "
                             "reasons for missing values go to stderr")
    parser.add_argument("--metric-model-dir", metavar="DIR",
                        help="DART's model-based metrics offline from this folder: roberta-large/ (BERTScore), "
                             "distilbert-base-uncased/ (MoverScore), bleurt-tiny-128/ (BLEURT), Hugging Face "
                             "model folders (default: the Hub, or PEFT_BENCH_METRIC_MODELS=DIR|off)")
    parser.epilog = UNITS
    parser.set_defaults(func=run)
