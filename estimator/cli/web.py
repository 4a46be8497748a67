"""``estimate serve``: the calculator as a local web page over a JSON API, offline (the ``web`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from estimator.cli.app import app
from estimator.errors import EstimatorError

WEB_HINT = 'pip install -e ".[web]"'


@app.command("serve")
def serve_command(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps the page on this machine.")] = "127.0.0.1",
) -> None:
    """Serve the calculator as a local web page (and its JSON API under /api) until interrupted."""
    import importlib.util

    if not 0 < port < 65536:
        raise EstimatorError(f"--port {port} is not a TCP port; give one from 1 to 65535, e.g. 8000")
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise EstimatorError(f"the web page needs {', '.join(missing)}; install the web extra: {WEB_HINT}")
    from estimator.web.server import is_loopback, listen, serve

    sock = listen(host, port)  # bound before a word is printed: a busy port is one line and exit 2
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    if not is_loopback(host):
        typer.echo(
            f"warning: --host {host} serves the calculator to every machine that can reach this address; it has no "
            "login and no TLS. Use 127.0.0.1 unless you mean that.",
            err=True,
        )
    typer.echo(f"estimator: serving on http://{shown}:{port}/ (Ctrl+C to stop)")
    serve(sock, host.strip("[]"), port)
