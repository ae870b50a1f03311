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


def test_report_computes_intervals_and_marks_without_torch(tmp_path):
    """Both protocols, bootstrap intervals and marks, from a CSV and its per-example predictions file alone."""
    import numpy as np

    from tests.report_synth import noisy, write_preset

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 300)
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, {
        "A": {"dev": [noisy(gold, 0.9, rng) for _ in range(3)], "heldout": [noisy(gold, 0.88, rng) for _ in range(3)]},
        "B": {"dev": [noisy(gold, 0.7, rng) for _ in range(3)], "heldout": [noisy(gold, 0.65, rng) for _ in range(3)]}})
    shutil.copy(REPO / "results" / "paper.csv", results / "paper.csv")
    res = _cli("report", "syn", "--results", str(results), "--out", str(tmp_path / "reports"), cwd=REPO)
    assert res.returncode == 0, res.stderr
    sel = (tmp_path / "reports" / "syn" / "selection.md").read_text()
    assert "| A | **90.0** [" in sel and "+5.0" in sel
