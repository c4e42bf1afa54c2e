"""User-facing errors: one exception type whose message says which input is wrong and what to do."""

from __future__ import annotations


class CsakdError(Exception):
    """An error caused by the user's inputs or environment, with an actionable message.

    The CLI prints ``str(err)`` on one line and exits 1; Processing algorithms raise it as
    ``QgsProcessingException`` so qgis_process exits 1 with the same text.
    """


class CancelledError(CsakdError):
    """Raised when the user cancels a run (progress callback returned a cancel request)."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


def name_for_user(exc: BaseException, names: dict[str, str]) -> BaseException:
    """``exc`` with each hidden temporary path (a key of ``names``) in its message replaced by what the user
    gave (the value): errors name the user's product or output, never a work file they never saw."""
    if exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
        for hidden in sorted(names, key=len, reverse=True):  # longest first: a folder after its files
            text = text.replace(hidden, names[hidden])
        exc.args = (text, *exc.args[1:])
    return exc
