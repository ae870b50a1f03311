"""The two Java programs the official scorers use, run from the jars that PyPI's `pycocoevalcap` ships.

- METEOR 1.5 (`meteor-1.5.jar`, English paraphrase table included): one JVM per scoring call, driven through
  its `-stdio` protocol: one `SCORE ||| ref ... ||| hyp` line per segment returns that segment's sufficient
  statistics; `EVAL ||| stats ||| stats ...` returns each segment's score and then the corpus score computed
  from the summed statistics -- the same number the jar prints for a whole file (`-l en -norm [-r N]`).
- Stanford PTB tokenizer (`stanford-corenlp-3.4.1.jar`, `-preserveLines -lowerCase`), then the punctuation
  tokens removed, as pycocoevalcap's `PTBTokenizer` does for E2E's METEOR, ROUGE-L and CIDEr. The temporary
  input file goes to a fresh temporary directory (pycocoevalcap puts it inside its installed package, which
  fails on a read-only install).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from collections.abc import Sequence

from bench.scorers.base import ScorerError

METEOR_HEAP = "-Xmx2G"  # what the official scripts pass
# PTB tokens dropped after tokenisation (pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS)
PTB_PUNCTUATION = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                             ".", "?", "!", ",", ":", "-", "--", "...", ";"])
# characters the PTB tokenizer treats as line ends: they would shift the line alignment, so they become spaces
_PTB_LINE_BREAKS = str.maketrans({c: " " for c in "\r\n\x0b\x0c\x1c\x1d\x1e\u2028\u2029"})


def java_executable() -> str:
    """The `java` on PATH, or a clear error: METEOR and the PTB tokenizer are Java programs."""
    java = shutil.which("java")
    if java is None:
        raise ScorerError(
            "METEOR (and the PTB tokenizer used for E2E) needs a Java runtime, but `java` is not on PATH. "
            "Install one (Java 8 or newer, e.g. `apt-get install default-jre-headless` or `conda install openjdk`) "
            "and make sure `java -version` works in this shell.")
    return java


def _jar(subdir: str, name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pycocoevalcap")  # a namespace package: no __init__.py, no __file__
    if spec is None or not spec.submodule_search_locations:
        raise ScorerError("the `pycocoevalcap` package (which ships the METEOR and PTB jars) is not installed; "
                          "pip install pycocoevalcap==1.2")
    path = Path(list(spec.submodule_search_locations)[0]).resolve() / subdir / name
    if not path.is_file():
        raise ScorerError(f"{path} is missing from the pycocoevalcap install; reinstall pycocoevalcap==1.2")
    return path


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Lower-cased PTB tokens without punctuation tokens, one output per input sentence."""
    java = java_executable()
    jar = _jar("tokenizer", "stanford-corenlp-3.4.1.jar")
    if not sentences:
        return []
    text = "\n".join(s.translate(_PTB_LINE_BREAKS) for s in sentences)
    with tempfile.TemporaryDirectory(prefix="peft-bench-ptb-") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text(text, encoding="utf-8")
        proc = subprocess.run(
            [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
             src.name], cwd=tmp, capture_output=True)
    if proc.returncode != 0:
        raise ScorerError(f"the PTB tokenizer failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode('utf-8', 'replace')[-500:]}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) < len(sentences) or any(line.strip() for line in lines[len(sentences):]):
        raise ScorerError(f"the PTB tokenizer returned {len(lines)} lines for {len(sentences)} sentences; "
                          "the outputs would not line up with the inputs")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PTB_PUNCTUATION)
            for line in lines[:len(sentences)]]


def _clean(text: str) -> str:
    # '|||' separates fields in METEOR's stdio protocol; newlines end the request.
    return " ".join(text.replace("|||", "").split())


class MeteorSession:
    """One METEOR 1.5 JVM (`-l en -norm`). Use as a context manager; the JVM starts once."""

    def __init__(self) -> None:
        java = java_executable()
        jar = _jar("meteor", "meteor-1.5.jar")
        try:
            self._proc = subprocess.Popen(
                [java, "-jar", METEOR_HEAP, str(jar), "-", "-", "-stdio", "-l", "en", "-norm"],
                cwd=str(jar.parent), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise ScorerError(f"could not start METEOR with {java}: {exc}") from exc
        self._stderr: list[bytes] = []
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()

    def _drain_stderr(self) -> None:
        for line in self._proc.stderr:
            self._stderr.append(line)

    def __enter__(self) -> MeteorSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def _exchange(self, requests: list[str], n_replies: int) -> list[str]:
        """Write the requests from a thread (no pipe deadlock) while reading `n_replies` lines."""
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for req in requests:
                    self._proc.stdin.write(req.encode("utf-8") + b"\n")
                self._proc.stdin.flush()
            except BaseException as exc:  # broken pipe: reported below with the JVM's stderr
                errors.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        replies = []
        for _ in range(n_replies):
            line = self._proc.stdout.readline()
            if not line:
                break
            replies.append(line.decode("utf-8").strip())
        writer.join()
        if errors or len(replies) != n_replies or any(r.startswith("Error") for r in replies):
            detail = b"".join(self._stderr).decode("utf-8", "replace")[-800:]
            bad = next((r for r in replies if r.startswith("Error")), "")
            raise ScorerError(f"METEOR returned {len(replies)} of {n_replies} lines {bad} {detail}".strip())
        return replies

    def statistics(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[str]:
        """Per-segment sufficient statistics (the best reference per segment, as the jar picks it)."""
        requests = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            if not refs:
                raise ValueError("METEOR needs at least one reference (possibly empty) per segment")
            requests.append(" ||| ".join(["SCORE", *(_clean(r) for r in refs), _clean(hyp)]))
        return self._exchange(requests, len(requests))

    def corpus_score(self, stats: Sequence[str]) -> float:
        """The corpus METEOR of the summed statistics (as the jar prints for a whole file)."""
        if not stats:
            raise ValueError("METEOR of an empty set")
        replies = self._exchange([" ||| ".join(["EVAL", *stats])], len(stats) + 1)
        return float(replies[-1])

