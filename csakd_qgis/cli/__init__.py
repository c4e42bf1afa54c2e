"""``csakd`` command line: the same core calls as the Processing algorithms, without QGIS."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback

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
from csakd_qgis.failures import failure_message
from csakd_qgis.oscompat import stop_signals
from csakd_qgis.version import __version__


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every writer removes its temporary file."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


_GDAL_HANDLER: list = []  # keeps the handler alive while GDAL holds it


def route_gdal_messages(verbose: bool) -> None:
    """GDAL's own messages go to the log (shown with -v) instead of extra stderr lines beside the error line."""
    logging.getLogger("rasterio").setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        from osgeo import gdal
    except ImportError:
        return
    gdal_log = logging.getLogger("csakd.gdal")

    def handler(err_class: int, err_no: int, message: str) -> None:
        gdal_log.debug("GDAL: %s", message)

    _GDAL_HANDLER[:] = [handler]
    gdal.SetErrorHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; any failure prints one line 'csakd: error: ...' and returns exit code 1.

    Ctrl-C and SIGTERM stop the run cleanly (outputs removed) with exit codes 130 and 143.
    """

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    route_gdal_messages(args.verbose)
    term = [sig for sig in stop_signals() if sig != signal.SIGINT]  # SIGTERM where the platform delivers it
    previous = {sig: signal.signal(sig, _on_sigterm) for sig in term}
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        detail = str(exc) or "no output was written"  # a batch says which of its pairs finished
        print(f"csakd: {'terminated' if terminated else 'interrupted'}: {detail}", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as exc:  # noqa: BLE001 - one line instead of a traceback; -v shows the traceback
        line = failure_message(exc)
        if line is None:
            if args.verbose:
                traceback.print_exc()
            line = (f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); please report it "
                    "(run with -v for the details)")
        print(f"csakd: error: {line}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
