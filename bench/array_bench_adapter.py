"""The adapter bench/arrays_bench.cpp starts (python_path = bench/): a linear classifier shaped
like a model over scikit-learn's digits (64 features, 10 classes), fed as an ndarray or as lists.

Not scikit-learn (Debian's python3-sklearn is not a dependency): the cost that differs between
the two forms is the conversion of 1797 x 64 numbers, which this model pays exactly as a real
one would (``numpy.asarray`` of nested lists vs. a zero-copy view).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snakepit_bridge.adapter import BaseAdapter
from snakepit_bridge.tools import tool


class ArrayBenchAdapter(BaseAdapter):
    def setup(self) -> None:
        rng = np.random.default_rng(7)
        self.weights = rng.standard_normal((64, 10))
        self.bias = rng.standard_normal(10)

    @tool
    def predict(self, rows: Any) -> Any:
        """Class of each row (an ndarray in, an int64 ndarray out; lists in, a list out)."""
        as_lists = isinstance(rows, list)
        features = np.asarray(rows, dtype=np.float64)
        labels = np.argmax(features @ self.weights + self.bias, axis=1)
        return labels.tolist() if as_lists else labels
