"""Helper for the CLI tests: run one ``csakd`` subcommand in-process, exceptions propagating to the test."""

from __future__ import annotations

from typing import Any


def run_cli(argv: list[str]) -> Any:
    """Parse ``argv`` with the full ``csakd`` parser and call the subcommand (no error-to-exit-code wrapping,
    unlike :func:`csakd_qgis.cli.main`)."""
    from csakd_qgis.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)
