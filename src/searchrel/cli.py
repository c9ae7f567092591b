"""The `searchrel` command line (typer). Every stage is a subcommand; `python -m` entries
of the stage modules call into this same app so that both spellings behave identically."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def module_main(*command: str) -> None:
    """Run one subcommand as a `python -m searchrel.<module>` entry point."""
    main([*command, *sys.argv[1:]])


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="searchrel")
