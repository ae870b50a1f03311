"""`peft-bench show`, `collect` and `report` run on a machine without torch (and without transformers,
datasets or accelerate): each runs in a fresh interpreter in which importing those packages fails."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "transformers", "datasets", "accelerate", "peft", "tokenizers", "safetensors")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    from bench.cli import main
    code = main(sys.argv[1:])
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({BLOCKED!r}))
    assert not loaded, loaded
    sys.exit(code)
""")


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_blocker_blocks():
    res = subprocess.run([sys.executable, "-c", BLOCKER.replace("from bench.cli import main", "import torch")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "blocked in this test" in res.stderr


@pytest.mark.parametrize("argv", [["show", "smoke"], ["show", "minilm-glue"], ["collect", "smoke"]])
def test_show_and_collect_run_without_torch(argv, tmp_path):
    res = _cli(*argv, "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()
    if argv[0] == "collect":
        assert (tmp_path / "results" / "smoke.csv").is_file()


def test_report_runs_without_torch_on_the_committed_csv(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for name in ("minilm-glue.csv", "paper.csv"):
        shutil.copy(REPO / "results" / name, results / name)
    res = _cli("report", "minilm-glue", "--results", str(results), "--out", str(tmp_path / "reports"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "reports" / "minilm-glue"
    assert (out / "glue.md").read_text() == (REPO / "reports" / "minilm-glue" / "glue.md").read_text()
    assert (out / "summary.png").is_file()
