"""The ``estimate`` command line: one typer app (:mod:`.app`), the query's options declared once
(:mod:`.options`), the headline query (:mod:`.headline`), and subcommands registered lazily (:mod:`.main`)."""

from estimator.cli.main import main

__all__ = ["main"]
