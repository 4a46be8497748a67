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
    import uvicorn

    from estimator.web.app import create_app

    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"estimator: serving on http://{shown}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
