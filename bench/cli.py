"""The `peft-bench` command line. Subcommands live in `bench.commands.<name>`, imported lazily so that
`peft-bench report` never imports torch."""
from __future__ import annotations

import argparse
import importlib
import sys

from bench.config import ConfigError

# One explicit line per subcommand: (name, module, one-line help).
COMMANDS = [
    ("ls", "bench.commands.ls", "list methods, models, tasks or presets"),
    ("params", "bench.commands.params", "parameter counts of a method on a model (no weights needed)"),
    ("data", "bench.commands.data", "load a task's splits and print their sizes"),
    ("score", "bench.commands.score", "score a hypothesis file with the task's official-equivalent scorers"),
    ("run", "bench.commands.run", "train and evaluate one model x task x method"),
    ("grid", "bench.commands.grid", "run a preset's grid (resumable; local or Slurm)"),
    ("show", "bench.commands.show", "show a preset's expanded grid and what is done"),
    ("plan", "bench.commands.plan", "what a preset's grid costs: steps, tokens, memory, device-hours"),
    ("collect", "bench.commands.collect", "collect finished runs into results/PRESET.csv"),
    ("report", "bench.commands.report", "tables and plots of a preset beside the papers' numbers"),
    ("export", "bench.commands.export", "write a run's trained method state in PEFT's format (or ours)"),
    ("perf", "bench.commands.perf", "training and decoding speed benchmark against Trainer + peft"),
]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peft-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module, help_ in COMMANDS:
        if wanted is not None and wanted != name and wanted in {n for n, _, _ in COMMANDS}:
            sub.add_parser(name, help=help_)  # listed in --help, not imported
            continue
        mod = importlib.import_module(module)
        mod.register(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"peft-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `peft-bench show ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
