"""Batched random draws: numpy fills large buffers, the simulator pops plain floats."""

from __future__ import annotations

import numpy as np

_BATCH = 8192


class RandomStream:
    """Uniform, standard normal and standard exponential draws from one seeded generator."""

    __slots__ = ("_e", "_ei", "_gen", "_n", "_ni", "_u", "_ui")

    def __init__(self, seed: int) -> None:
        self._gen = np.random.default_rng(seed)
        self._u: list[float] = []
        self._n: list[float] = []
        self._e: list[float] = []
        self._ui = self._ni = self._ei = _BATCH
        self._u = [0.0] * _BATCH
        self._n = [0.0] * _BATCH
        self._e = [0.0] * _BATCH

    def uniform(self) -> float:
        i = self._ui
        if i == _BATCH:
            self._u = self._gen.random(_BATCH).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def normal(self) -> float:
        i = self._ni
        if i == _BATCH:
            self._n = self._gen.standard_normal(_BATCH).tolist()
            i = 0
        self._ni = i + 1
        return self._n[i]

    def exponential(self) -> float:
        i = self._ei
        if i == _BATCH:
            self._e = self._gen.standard_exponential(_BATCH).tolist()
            i = 0
        self._ei = i + 1
        return self._e[i]
