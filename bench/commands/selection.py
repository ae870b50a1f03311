"""The run selection every grid command shares: preset, overrides, tasks, methods, seeds, results folder."""
from __future__ import annotations

from bench.config import ConfigError


def add_selection(parser) -> None:
    parser.add_argument("preset", help="preset name (peft-bench ls presets)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every run: method.<field>, train.<field>, decoding.<field>")
    parser.add_argument("--tasks", default="", help="comma-separated tasks to keep (dependencies are kept)")
    parser.add_argument("--methods", default="", help="comma-separated methods to keep")
    parser.add_argument("--seeds", default="", help="comma-separated seeds to keep")
    parser.add_argument("--results-dir", default="results", help="where runs/ and PRESET.csv live")


def selection(args) -> dict:
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    return dict(overrides=args.overrides, tasks=[t for t in args.tasks.split(",") if t.strip()],
                methods=[m for m in args.methods.split(",") if m.strip()], seeds=seeds)
