"""`peft-bench params MODEL METHOD [--set key=value ...] [--json] [--kind ...]`: parameter counts in the papers'
conventions, computed on the model built on the meta device (no weights, seconds even for 1.5B parameters)."""
from __future__ import annotations

import dataclasses
import json


def counts(model: str, method: str, assignments=(), kind: str | None = None, num_labels: int = 2) -> dict:
    from bench.models import KINDS, build_meta, make_method, model_info
    from bench.config import ConfigError
    from methods import count_params

    info = model_info(model)
    chosen = make_method(method, list(assignments))
    if kind is None:
        kind = "generate" if info.decoder else "classify"
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    built, arch = build_meta(model, kind, chosen, num_labels=num_labels)
    result = dataclasses.asdict(count_params(built, arch, chosen))
    return {"model": model, "kind": kind, "method": {"name": chosen.name, **dataclasses.asdict(chosen)}, **result}


def run(args) -> int:
    result = counts(args.model, args.method, args.set or [], args.kind, args.num_labels)
    if args.json:
        print(json.dumps(result))
        return 0
    settings = ", ".join(f"{k}={v}" for k, v in result["method"].items() if k != "name")
    print(f"{result['model']} ({result['kind']}) + {result['method']['name']}" + (f" ({settings})" if settings else ""))
    rows = [
        ("trained", result["trained"], "requires grad, head excluded"),
        ("stored", result["stored"], "saved after training, head excluded (the papers' column)"),
        ("head", result["head"], "task head, trained, not counted"),
        ("total", result["total"], "all parameters of the model as run"),
    ]
    for name, value, note in rows:
        print(f"  {name:<8} {value:>15,}  {note}")
    print(f"  {'percent':<8} {result['percent']:>15.4f}  stored / base model x 100")
    return 0


def register(parser) -> None:
    parser.add_argument("model", help="model name (peft-bench ls models)")
    parser.add_argument("method", help="method name (peft-bench ls methods)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="method setting, e.g. --set r=16")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--kind", choices=("classify", "regress", "generate"), default=None,
                        help="task head: default generate for a decoder (GPT-2), classify otherwise")
    parser.add_argument("--num-labels", type=int, default=2, help="classes of the classification head (default 2)")
    parser.set_defaults(func=run)
