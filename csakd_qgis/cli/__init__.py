"""``csakd`` command line: the same core calls as the Processing algorithms, without QGIS."""

from __future__ import annotations

import argparse
import logging
import sys

from csakd_qgis import __version__
from csakd_qgis.cli.batch import add_batch_parser
from csakd_qgis.cli.coregister import add_coregister_parser
from csakd_qgis.cli.evaluate import add_evaluate_parser
from csakd_qgis.cli.export import add_export_parser
from csakd_qgis.cli.fuse import add_fuse_parser
from csakd_qgis.cli.model_info import add_model_info_parser
from csakd_qgis.cli.models import add_models_parser
from csakd_qgis.cli.simulate import add_simulate_parser
from csakd_qgis.cli.superresolve import add_superresolve_parser
from csakd_qgis.cli.train import add_train_parser
from csakd_qgis.errors import CsakdError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""

    parser = argparse.ArgumentParser(
        prog="csakd", description="Hyperspectral + multispectral fusion (CSAKD) from the command line.")
    parser.add_argument("--version", action="version", version=f"csakd_qgis {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_fuse_parser, add_coregister_parser, add_simulate_parser, add_evaluate_parser,
                add_train_parser, add_model_info_parser, add_superresolve_parser, add_models_parser,
                add_export_parser, add_batch_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user errors print one line 'csakd: error: ...' and return exit code 1."""

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except CsakdError as exc:
        print(f"csakd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("csakd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
