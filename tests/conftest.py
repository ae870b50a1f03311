"""Shared test fixtures. Area-specific fixtures live in tests/fixtures/<area>/ and in conftest_<area>.py modules."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(os.environ.get("PEFT_BENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real dataset copies beside the checkout; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared data at {SHARED_DATA}")
    return SHARED_DATA


# -- the local Hub mirror ---------------------------------------------------------------------------------------
class HubMirror:
    """A running local Hub (tests/hub/): `endpoint` (http://127.0.0.1:PORT), `root` (the git repositories),
    `sources` ((task, split) -> the release files that split was built from, with the matching --data-dir).

    `env(hf_home)` is the environment a subprocess needs to use it: HF_ENDPOINT and an empty HF_HOME, nothing else
    (the Hub clients read them at import, so in-process code cannot be pointed at the mirror afterwards).
    """

    def __init__(self, endpoint: str, root: Path, sources: dict):
        self.endpoint, self.root, self.sources = endpoint, root, sources

    def env(self, hf_home: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HF_ENDPOINT=self.endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1")
        return env


@pytest.fixture(scope="session")
def hub_mirror(tmp_path_factory):
    """One local Hub per test session: the dataset repositories of the eleven tasks (nyu-mll/glue,
    tuetschek/e2e_nlg, webnlg-challenge/web_nlg, Yale-LILY/dart) laid out as on the Hub and filled from
    ../shared/data where present, else from the fixtures; the test models peft-bench-test/tiny-roberta and
    tiny-gpt2; the paper models' config and tokenizer files. Served by olah on 127.0.0.1 (tests/hub/server.py).
    Skips when olah is not installed. Use `hub_mirror.env(tmp_path)` for a subprocess's environment."""
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("olah")
    from filelock import FileLock

    from tests.hub.layouts import split_sources
    from tests.hub.repos import build_mirror
    from tests.hub.server import free_port

    sources = [SHARED_DATA, FIXTURES / "data", FIXTURES / "hub", REPO / "bench" / "fixtures" / "smoke"]
    import hashlib

    # one build per version of the builder and set of sources present (../shared/data or the fixtures), shared
    # by the xdist workers of a session and by later sessions
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted((REPO / "tests" / "hub").glob("*.py"))))
    for src in sources:                         # which sources exist, and their files (name, size, mtime)
        for f in sorted(src.rglob("*")) if src.is_dir() else ():
            if f.is_file():
                st = f.stat()
                digest.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    shared = tmp_path_factory.getbasetemp().parent / f"hub-mirror-{digest.hexdigest()[:12]}"
    with FileLock(str(shared) + ".lock"):
        if not (shared / "done").is_file():
            build_mirror(shared / "repos", sources)
            (shared / "done").write_text("ok")
    port = free_port()
    log = (tmp_path_factory.mktemp("hub-server") / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "tests.hub.server", "--mirrors", str(shared / "repos"),
                               "--port", str(port)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/api/datasets/nyu-mll/glue/revision/main", timeout=5):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"the Hub mirror did not start (log: {log.name})") from None
            time.sleep(0.5)
    yield HubMirror(endpoint, shared / "repos", split_sources(sources))
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(autouse=True)
def _no_metric_models_from_the_hub(monkeypatch):
    """DART's model-based metrics load their models from the Hub by default; tests never do (a test of the Hub
    path sets the variable itself)."""
    monkeypatch.setenv("PEFT_BENCH_METRIC_MODELS", "off")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip where CUDA is absent, unless PEFT_BENCH_CUDA_TEST_DEVICE names another device
    to run them on (tests/test_cuda.py)."""
    marked = [item for item in items if "cuda" in item.keywords]
    if not marked or os.environ.get("PEFT_BENCH_CUDA_TEST_DEVICE"):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (make gpu-check runs it on a GPU machine)")
    for item in marked:
        item.add_marker(skip)
