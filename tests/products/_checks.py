"""Check shared by the product-reader tests: a bad product is refused with one line."""

from __future__ import annotations

import pytest

from csakd_qgis.errors import CsakdError
from csakd_qgis.products.registry import open_product


def assert_one_line_error(path, match: str) -> None:
    """Opening the product at ``path`` raises a CsakdError matching ``match``, in one line."""
    with pytest.raises(CsakdError, match=match) as err:
        open_product(path)
    assert "\n" not in str(err.value)
