"""One series of a Prometheus range query, as Terry holds it (``terry.forecast.prometheus``
reads them, ``terry.forecast.nodes`` cuts them into spans)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Floats", "RangeSeries"]

Floats = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RangeSeries:
    """One series of a range query: its labels and finite-or-not samples, in time order."""

    labels: dict[str, str]
    timestamps: Floats
    values: Floats
