"""The entry point: register the commands a command line needs, run it, and turn every input error into
one line and exit status 2.

Subcommands live in their own modules, imported (and so registered on the app) only when the command
line names them or asks for help: a plain query does not pay for their options.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer._click.exceptions import ClickException, UsageError  # typer >= 0.24 carries its own click
from typer._click.utils import PacifyFlushWrapper

from estimator.cli import headline, streams  # noqa: F401  (headline registers the main query on the app)
from estimator.cli.app import EXIT_BAD_INPUT, app
from estimator.errors import EstimatorError
from estimator.offline import go_offline

LAZY_COMMANDS = {
    "models": "estimator.cli.models",
    "validate": "estimator.cli.validate",
    "figures": "estimator.cli.figures",
    "plot": "estimator.cli.figures",
    "sweep": "estimator.cli.figures",
    "capacity": "estimator.cli.beyond",
    "breakeven": "estimator.cli.breakeven",
    "constants": "estimator.cli.beyond",
    "compare": "estimator.cli.compare",
    "serve-memory": "estimator.cli.serve_memory",
    "train-memory": "estimator.cli.train_memory",
    "inspect": "estimator.cli.inspect_checkpoint",
    "serve": "estimator.cli.web",
}


def register_commands(args: list[str]) -> None:
    """Import the modules of the subcommands ``args`` may run (all of them for help or no arguments)."""
    everything = not args or any(a in ("--help", "-h") for a in args)
    for name, module in LAZY_COMMANDS.items():
        if everything or name in args:
            importlib.import_module(module)


def repeated_option(command: Any, args: list[str]) -> str | None:
    """The first single-valued option given twice on the command line, before or after a subcommand
    (click would silently keep the last); None when there is none."""
    seen: dict[str, str] = {}
    current, i = command, 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1:
            spelled, _, inline = arg.partition("=")
            param = next((p for p in current.params if spelled in (*p.opts, *p.secondary_opts)), None)
            if param is not None and not getattr(param, "multiple", False):
                if param.name in seen:
                    return f"{spelled} is given twice ({seen[param.name]} before); give it once"
                seen[param.name] = spelled
                takes_value = not getattr(param, "is_flag", False) and not inline
                i += 2 if takes_value else 1
                continue
        elif hasattr(current, "commands") and arg in current.commands:
            current = current.commands[arg]
        i += 1
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the app; turn every input error into one line on stderr and exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    streams.prepare()
    go_offline()  # before any Hugging Face library is imported: never the network
    register_commands(args)
    command = typer.main.get_command(app)
    try:
        if (repeated := repeated_option(command, args)) is not None:
            raise EstimatorError(repeated)
        # without standalone mode, click returns the code of a typer.Exit raised in a command rather than raising
        code = command.main(args=args, prog_name="estimate", standalone_mode=False)
    except SystemExit:  # click's answer to a broken pipe is exit(1); ours is to stop quietly
        if isinstance(sys.stdout, PacifyFlushWrapper):
            streams.silence_stdout()
            return 0
        raise
    except EstimatorError as exc:
        from estimator.checkpoint.files import printable

        typer.echo(f"error: {printable(str(exc), 4000)}", err=True)  # no terminal escapes from a file's names
        return EXIT_BAD_INPUT
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "estimate"
        typer.echo(f"error: {_one_line(exc.format_message()).rstrip('.')}; see `{where} --help`", err=True)
        return EXIT_BAD_INPUT
    except ClickException as exc:
        typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
        return int(exc.exit_code) or 1
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except BrokenPipeError:  # e.g. `estimate ... | head`: stop quietly
        streams.silence_stdout()
        return 0
    except OSError as exc:  # an output file or folder that cannot be written
        where = exc.filename or "the output"
        typer.echo(f"error: cannot write {where}: {exc.strerror or exc}; check the path and its permissions", err=True)
        return EXIT_BAD_INPUT
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # `python -m estimator.cli.main`
    sys.exit(main())
