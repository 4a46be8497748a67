"""Never the network (#25): each command runs in a child interpreter whose ``sitecustomize`` installs an audit
hook on every socket connect, send and name lookup; it records each attempt and refuses it. The plain query,
``--config`` of a model type no family knows (measured in its own child, which loads the same hook),
``inspect``, ``validate`` on one small model and the server's API all run with none recorded. A control run
that does open a connection proves the hook sees one."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from estimator.offline import OFFLINE_ENV

from .test_checkpoint import write_gguf
from .test_unknown_family import CONFIG as UNKNOWN

ROOT = Path(__file__).resolve().parent.parent
HOOK = """
import os, socket, sys

_LOG = os.environ["NETWORK_LOG"]
_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
           "socket.gethostbyaddr", "socket.getnameinfo"}


def _hook(event, args):
    if event not in _EVENTS:
        return
    if event == "socket.connect" and getattr(args[0], "family", None) == socket.AF_UNIX:
        return
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {event} {args[1:]!r}\\n"[:500])
    raise OSError(f"network blocked by the test: {event}")


sys.addaudithook(_hook)
"""

KERNELS = '''"""A stand-in for the Hub's ``kernels`` package (not installed here): get_kernel downloads, as the real one
does, through huggingface_hub, which bitsandbytes' CPU backend calls on import on an AVX512-BF16 CPU."""


def get_kernel(repo_id, version=None, **kwargs):
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id)
'''


@pytest.fixture
def hooked(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose Python processes load the hook, and the log it writes."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOOK)
    if importlib.util.find_spec("kernels") is None:
        (site / "kernels.py").write_text(KERNELS)
    log = tmp_path / "network.log"
    log.write_text("")
    path = os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "NETWORK_LOG": str(log)}
    for name in OFFLINE_ENV:
        env.pop(name, None)  # the tool must switch them itself (in-process tests may have set them here)
    return env, log


def test_the_hook_sees_a_connection(hooked: tuple[dict[str, str], Path]) -> None:
    """Without the tool's switches, the stand-in ``kernels`` reaches for the Hub: the hook records it."""
    env, log = hooked
    code = "import kernels\ntry:\n    kernels.get_kernel('kernels-community/x')\nexcept Exception:\n    pass"
    if importlib.util.find_spec("kernels") is not None or importlib.util.find_spec("huggingface_hub") is None:
        code = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 443), 1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=True)
    assert "socket.getaddrinfo" in log.read_text() or "socket.connect" in log.read_text(), log.read_text()


def test_the_commands_open_no_connection(tmp_path: Path, hooked: tuple[dict[str, str], Path]) -> None:
    env, log = hooked
    gguf = tmp_path / "tiny.gguf"
    write_gguf(gguf, quantised=False)
    unknown = tmp_path / "helium" / "config.json"
    unknown.parent.mkdir()
    unknown.write_text(json.dumps(UNKNOWN))
    commands = [["--model", "llama3-70b", "--tokens", "100k"], ["inspect", str(gguf)], ["--config", str(gguf)]]
    if all(importlib.util.find_spec(name) for name in ("torch", "transformers", "peft")):
        commands += [["--config", str(unknown), "--tokens", "1k"], ["validate", "--model", "gpt2"]]
    script = (
        "import sys\nfrom estimator.cli.main import main\n"
        f"codes = [main(args) for args in {commands!r}]\nprint('codes', codes)"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert f"codes {[0] * len(commands)}" in done.stdout, done.stderr[-2000:]
    assert log.read_text() == "", log.read_text()[:2000]


def test_the_server_opens_no_connection(hooked: tuple[dict[str, str], Path]) -> None:
    pytest.importorskip("uvicorn")
    env, log = hooked
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "estimator.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        base, deadline, answers = f"http://127.0.0.1:{port}", time.monotonic() + 30, []
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/", timeout=5) as page:
                    answers.append(page.status)
                break
            except OSError:
                time.sleep(0.2)
        for path in ("/api/estimate?model=gpt2", "/api/models?tokens=1k", "/api/sweep?model=gpt2&tokens=1k,1M"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                answers.append(response.status)
        assert answers == [200, 200, 200, 200]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert log.read_text() == "", log.read_text()[:2000]
