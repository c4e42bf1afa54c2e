"""Dict round-trip shared by the network config dataclasses (model cards store configs as JSON)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C", bound="DictConfig")


class DictConfig:
    """Mixin for a dataclass config: :meth:`to_dict` / :meth:`from_dict` with unknown keys refused."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from :meth:`to_dict` output; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()})
