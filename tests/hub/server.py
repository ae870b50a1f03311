"""Serve a folder of mirror repositories as the Hub on 127.0.0.1 with olah (offline, `mirrors-path`).

Repository info without a revision (`/api/models/ORG/NAME`, or `/api/models/NAME` for a legacy id without an
organisation) makes olah ask upstream for the latest commit; the front answers it from `main`, as the Hub does.
olah's routes take a revision as one path segment, so `refs%2Fconvert%2Fparquet` (how huggingface_hub sends
`refs/convert/parquet`) matches no route. `ResolveRevisions` sits in front of olah and rewrites such a revision
to the commit it names in the mirror's git repository; a revision the repository lacks gets the Hub's answer
(404, X-Error-Code: RevisionNotFound).

    python -m tests.hub.server --mirrors DIR --port-file FILE     # prints nothing; FILE gets the port
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

_KEYWORDS = ("revision", "tree", "paths-info", "resolve", "commits", "refs")


class ResolveRevisions:
    """ASGI middleware: a slash-encoded revision segment becomes its commit sha."""

    def __init__(self, app, mirrors: Path):
        self.app, self.mirrors, self.cache = app, mirrors, {}

    def _repo_dir(self, parts: list[str], k: int) -> Path | None:
        """The mirror repository named by parts[:k] (`[api/]TYPE/ORG/NAME`, `[api/]TYPE/NAME` for a legacy id
        without an organisation such as `roberta-large`, or a model's `ORG/NAME` / `NAME`), None if none."""
        head = parts[:k]
        if head[:1] == ["api"]:
            head = head[1:]
        candidates = []
        if head[:1] and head[0] in ("datasets", "models", "spaces") and len(head) in (2, 3):
            candidates.append(self.mirrors.joinpath(*head))
        if len(head) in (1, 2):
            candidates.append(self.mirrors.joinpath("models", *head))
        return next((c for c in candidates if _is_repo(c)), None)

    def _sha(self, repo: Path, rev: str) -> str | None:
        key = (repo, rev)
        if key not in self.cache:
            out = subprocess.run(["git", "--git-dir", str(repo), "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
                                 capture_output=True, text=True)
            self.cache[key] = out.stdout.strip() if out.returncode == 0 else None
        return self.cache[key]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            raw = scope.get("raw_path") or quote(scope["path"]).encode()
            parts = raw.decode("latin-1").split("?")[0].lstrip("/").split("/")
            if parts[0] == "api" and len(parts) in (3, 4) and self._repo_dir(parts, len(parts)) is not None:
                # repo info without a revision: olah asks upstream for the latest commit; the Hub gives main's
                new_raw = "/" + "/".join(parts + ["revision", "main"])
                scope = {**scope, "raw_path": new_raw.encode("latin-1"), "path": new_raw}
            for k, part in enumerate(parts[:-1]):
                nxt = parts[k + 1]
                if part in _KEYWORDS and "%2f" in nxt.lower():
                    repo = self._repo_dir(parts, k)
                    if repo is None:
                        break  # olah answers for a repository it does not have
                    sha = self._sha(repo, unquote(nxt))
                    if sha is None:  # as the Hub answers a missing revision of an existing repository
                        from olah.errors import error_revision_not_found

                        await error_revision_not_found(unquote(nxt))(scope, receive, send)
                        return
                    parts[k + 1] = sha
                    new_raw = "/" + "/".join(parts)
                    scope = {**scope, "raw_path": new_raw.encode("latin-1"), "path": unquote(new_raw)}
                    break
        ranged = scope["type"] == "http" and "/resolve/" in scope["path"] and any(
            k == b"range" for k, _ in scope.get("headers", []))
        if ranged:
            await self._ranged(scope, receive, send)
        elif scope["type"] == "http" and self._known_repo(scope["path"]):
            await self.app(scope, receive, self._missing_entry(send))
        else:
            await self.app(scope, receive, send)

    def _known_repo(self, path: str) -> bool:
        """A tree listing or file download (`tree`, `resolve`) in a repository of the mirror."""
        parts = path.lstrip("/").split("/")
        keyword = next((k for k in ("tree", "resolve") if k in parts), None)
        return keyword is not None and self._repo_dir(parts, parts.index(keyword)) is not None

    @staticmethod
    def _missing_entry(send):
        """olah answers a tree listing of a folder, or a file, that its mirror's repository lacks with 401
        RepoNotFound; the Hub answers 404 EntryNotFound (transformers lists `additional_chat_templates/` of every
        tokenizer repo, and asks for model.safetensors in a repository that has only pytorch_model.bin)."""
        async def wrapped(message):
            if message["type"] == "http.response.start" and message["status"] == 401:
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"x-error-code", b"x-error-message")]
                headers += [(b"x-error-code", b"EntryNotFound"), (b"x-error-message", b"Entry not found")]
                message = {**message, "status": 404, "headers": headers}
            await send(message)
        return wrapped

    async def _ranged(self, scope, receive, send):
        """Answer a byte-range GET with 206 and the range (the Hub does; olah's mirror routes send the whole
        file): HfFileSystem reads a parquet footer this way."""
        spec = dict(scope["headers"])[b"range"].decode()
        start_text, _, end_text = spec.removeprefix("bytes=").partition("-")
        status, headers, chunks = 200, [], []

        async def collect(message):
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, collect)
        body = b"".join(chunks)
        if status == 200 and scope["method"] == "GET":
            size = len(body)
            if start_text:
                start, end = int(start_text), min(int(end_text) if end_text else size - 1, size - 1)
            else:  # bytes=-N: the last N bytes
                start, end = max(size - int(end_text), 0), size - 1
            body, status = body[start:end + 1], 206
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers += [(b"content-range", f"bytes {start}-{end}/{size}".encode()),
                        (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_repo(path: Path) -> bool:
    """A bare git repository (an organisation's folder is not one)."""
    return (path / "HEAD").is_file()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirrors", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    mirrors = Path(args.mirrors).resolve()
    work = Path(tempfile.mkdtemp(prefix="olah-"))
    config = work / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {args.port}\n'
        f'repos-path = "{work / "repos"}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        f'mirror-netloc = "127.0.0.1:{args.port}"\nmirror-lfs-netloc = "127.0.0.1:{args.port}"\n'
        "[accessibility]\noffline = true\n"
    )
    os.environ["OLAH_CONFIG"] = str(config)
    os.environ.setdefault("OLAH_LOG_PATH", str(work / "logs"))
    import threading
    import time

    import uvicorn
    from olah.server import app  # reads OLAH_CONFIG on import

    parent = os.getppid()

    def stop_with_parent() -> None:  # a killed test session leaves no server behind
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=stop_with_parent, daemon=True).start()

    uvicorn.run(ResolveRevisions(app, mirrors), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
