"""Counters and gauges, exposed by the API in the Prometheus text format."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["Metrics"]


class Metrics:
    """Monotonic counters (``inc``) and gauges (``set``), each with optional labels."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._counters[(name, tuple(sorted(labels.items())))] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._gauges[(name, tuple(sorted(labels.items())))] = value

    def get(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self._counters.get(key, self._gauges.get(key, 0.0))

    def total(self, name: str) -> float:
        """Sum of a counter over all its label values."""
        return sum(v for (n, _), v in self._counters.items() if n == name)

    def render(self) -> str:
        lines = []
        for kind, table in (("counter", self._counters), ("gauge", self._gauges)):
            names = sorted({n for n, _ in table})
            for name in names:
                lines.append(f"# TYPE civic_{name} {kind}")
                for (n, labels), value in sorted(table.items()):
                    if n != name:
                        continue
                    label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                    suffix = "{" + label_text + "}" if label_text else ""
                    lines.append(f"civic_{name}{suffix} {value:g}")
        return "\n".join(lines) + "\n"
