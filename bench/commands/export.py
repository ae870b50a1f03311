"""`peft-bench export RUN_DIR OUT [--force]`: a finished run's best method state, in PEFT's own format where PEFT
has the method (LoRA; prefix tuning and soft prompts on a GPT-2 causal LM), else in the suite's format
(safetensors + a small JSON config) with the reason. See bench/export.py."""
from __future__ import annotations


def run(args) -> int:
    from bench.export import export_run

    result = export_run(args.run_dir, args.out, force=args.force)
    files = ", ".join(result.files)
    if result.format == "peft":
        print(f"wrote {result.out}: PEFT {result.peft_type} ({files}); load it with "
              f"PeftModel.from_pretrained(base_model, {str(result.out)!r})")
    else:
        print(f"wrote {result.out} in peft-bench's format ({files}): {result.reason}. Load it by applying the same "
              f"method and calling methods.load_method_state (see {result.files[-1]})")
    return 0


def register(parser) -> None:
    parser.add_argument("run_dir", help="a finished run's folder (results/runs/PRESET/RUN_ID)")
    parser.add_argument("out", help="folder to write (must not exist or be empty, unless --force)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    parser.set_defaults(func=run)
