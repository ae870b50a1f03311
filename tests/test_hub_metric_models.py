"""DART's model-based metrics through the local Hub mirror (tests/hub/metric_models.py: tiny random models under
`roberta-large`, `distilbert-base-uncased` and `Elron/bleurt-tiny-128`, with the real repositories' file names).

With only HF_ENDPOINT and an empty HF_HOME set, `peft-bench score dart` downloads the three models through the real
clients and gives the values that the same files give from a folder (`--metric-model-dir`, offline); the preflight
of a DART grid finds them, names a missing one in one line (the grid exits 2, nothing runs), and with
HF_HUB_OFFLINE=1 finds them in the cache the download filled.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from bench.scorers.model_based import HUB_IDS, METRICS, MODEL_METRICS
from tests.conftest import REPO

pytestmark = [pytest.mark.hub, pytest.mark.java,
              pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime (java on PATH)")]

HYPS = ["a cat sat on the mat .", "Rain fell in Paris", "", "x " * 300]   # the last: > 512 RoBERTa tokens
REFS = [["the cat sat on a mat", "a cat", "the cat sat"], ["it rains in paris", "rain", ""], ["something", "", ""],
        ["x y", "", ""]]


def _run(args, env, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _score(tmp_path, env, *extra) -> dict:
    hyps = tmp_path / "hyps.txt"
    hyps.write_text("\n".join(HYPS) + "\n")
    refs = []
    for slot in range(3):
        path = tmp_path / f"ref{slot}.txt"
        path.write_text("\n".join(r[slot] for r in REFS) + "\n")
        refs.append(str(path))
    out = _run(["-m", "bench.cli", "score", "dart", "--hyps", str(hyps), "--refs", *refs, "--json", *extra], env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _folder_of(repo, target):
    """The files of a mirror repository's main branch, written out as a from_pretrained folder."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(repo), "archive", "main"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)


def _hub_env(hub_mirror, hf_home):
    env = hub_mirror.env(hf_home)
    env.pop("PEFT_BENCH_METRIC_MODELS", None)   # the default: the Hub
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def scored_from_the_hub(hub_mirror, tmp_path_factory):
    """(the scores, the HF_HOME the download filled) of one `peft-bench score dart` through the mirror."""
    tmp = tmp_path_factory.mktemp("hub-metrics")
    return _score(tmp, _hub_env(hub_mirror, tmp / "hf")), tmp / "hf"


def test_the_metric_models_download_through_the_mirror_and_equal_the_same_models_from_a_folder(
        hub_mirror, scored_from_the_hub, tmp_path):
    from_hub, hf_home = scored_from_the_hub
    snapshots = {m: list((hf_home / "hub" / f"models--{HUB_IDS[m].replace('/', '--')}" / "snapshots").glob("*/*"))
                 for m in METRICS}
    assert {p.name for p in snapshots["bertscore"]} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert {p.name for p in snapshots["moverscore"]} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert {p.name for p in snapshots["bleurt"]} >= {"config.json", "pytorch_model.bin", "tokenizer.json"}

    models = tmp_path / "metric-models"
    for metric in METRICS:
        _folder_of(hub_mirror.root / "models" / HUB_IDS[metric], models / MODEL_METRICS[metric])
    offline = {k: v for k, v in _hub_env(hub_mirror, tmp_path / "hf-empty").items() if k != "HF_ENDPOINT"}
    offline["HF_HUB_OFFLINE"] = "1"
    from_dir = _score(tmp_path, offline, "--metric-model-dir", str(models))
    for metric in METRICS:
        assert isinstance(from_hub[metric], float), (metric, from_hub)
        assert from_hub[metric] == from_dir[metric], metric
    assert from_hub == from_dir                     # BLEU, METEOR, TER too
    assert len({from_hub[m] for m in METRICS}) == 3


def test_the_preflight_of_a_dart_grid_checks_the_metric_models_through_the_mirror(hub_mirror, scored_from_the_hub,
                                                                                 tmp_path):
    env = _hub_env(hub_mirror, tmp_path / "hf")
    results = tmp_path / "results"
    out = _run(["-m", "tests.hub.probe", "metric-preflight", str(tmp_path / "p.json"), str(results)], env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads((tmp_path / "p.json").read_text())
    assert got["all there"] == []
    line, = got["bleurt missing"]
    assert line.startswith("metric bleurt (DART), model Elron/bleurt-tiny-128-missing: the repository does not "
                           "exist") and hub_mirror.endpoint in line
    assert "PEFT_BENCH_METRIC_MODELS=DIR with DIR/bleurt-tiny-128" in line and "PEFT_BENCH_METRIC_MODELS=off" in line
    assert got["grid rc"] == 2
    assert got["grid stderr"].strip() == f"peft-bench grid: error: preflight (nothing was run): {line}"
    assert not (results / "runs").exists()

    # offline: the cache the download filled has them; an empty one has none, one line each
    code = ("import json; from bench.preflight import check_metric_models; from bench.spec import RunSpec; "
            "print(json.dumps([p.line() for p in check_metric_models([RunSpec('tiny-gpt2', 'dart', 'prefix')])]))")
    for home, expected in ((scored_from_the_hub[1], 0), (tmp_path / "hf-empty", 3)):
        offline = {**_hub_env(hub_mirror, home), "HF_HUB_OFFLINE": "1"}
        check = _run(["-c", code], offline)
        assert check.returncode == 0, check.stderr[-2000:]
        lines = json.loads(check.stdout.strip().splitlines()[-1])
        assert len(lines) == expected, lines
        assert all("not in the cache" in x and "huggingface-cli download" in x for x in lines)
