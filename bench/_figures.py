"""How a benchmark hands its figures to ``bench/run.py``: one JSON line per figure,
appended to the file named by ``BENCH_FIGURES`` (nothing happens when it is unset, so each
script still runs on its own and prints its own account)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "BENCH_FIGURES"


@dataclass(frozen=True)
class Figure:
    """One measured figure against its peer, measured in the same run."""

    bench: str
    figure: str
    ours: float
    unit: str
    peer: str
    peer_value: float | None
    #: "lower" when less is better (times), "higher" when more is (throughput).
    better: str = "lower"
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        """Ours over the peer's (below 1 is faster for times)."""
        if self.peer_value is None or self.peer_value == 0:
            return None
        return self.ours / self.peer_value


def record(
    bench: str,
    figure: str,
    ours: float,
    unit: str,
    peer: str,
    peer_value: float | None,
    *,
    better: str = "lower",
    goal: str = "",
) -> None:
    """Append one figure for ``bench/run.py`` when it asked for them."""
    target = os.environ.get(ENV)
    if not target:
        return
    line = json.dumps(asdict(Figure(bench, figure, ours, unit, peer, peer_value, better, goal)))
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
