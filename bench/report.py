"""Figures, their baselines, and the table, JSON and Markdown they end up in."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """One measured number. A baseline is another figure from the same run; the ratio is
    always value / baseline, whatever the unit, so it reads the same way in every row."""

    key: str
    label: str
    value: float
    unit: str
    baseline: Figure | None = None
    tag: str = ""  # a short name other rows use when they refer to this one as baseline

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.value or math.isnan(self.value):
            return None
        return self.value / self.baseline.value

    @property
    def title(self) -> str:
        return f"[{self.tag}] {self.label}" if self.tag else self.label

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "tag": self.tag or None,
            "value": _finite(self.value),
            "unit": self.unit,
            "baseline": None if self.baseline is None else {
                "key": self.baseline.key,
                "label": self.baseline.label,
                "tag": self.baseline.tag or None,
                "value": _finite(self.baseline.value),
                "unit": self.baseline.unit,
            },
            "ratio": None if self.ratio is None else round(self.ratio, 4),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "/s":
        return f"{value:,.0f} /s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    return f"{value:,.1f} {unit}"


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, key: str, label: str, value: float, unit: str, *,
            baseline: Figure | None = None, tag: str = "") -> Figure:
        figure = Figure(key, label, value, unit, baseline, tag)
        self.figures.append(figure)
        return figure

    def find(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    # -- output ---------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for f in self.figures:
            if f.baseline is None:
                baseline = "(baseline)" if f.tag else ""
            else:
                name = f.baseline.tag or f.baseline.label
                baseline = f"{name}: {fmt(f.baseline.value, f.baseline.unit)}"
            ratio = "" if f.ratio is None else f"{f.ratio:.3g}x"
            rows.append((f.title, fmt(f.value, f.unit), baseline, ratio))
        return rows

    def table(self) -> str:
        header = ("Figure", "Value", "Baseline", "Ratio")
        rows = [header, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        aligns = ("<", ">", "<", ">")
        lines = []
        for n, row in enumerate(rows):
            lines.append("  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, aligns, widths, strict=True)))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.extend(self._footer())
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            "# Our Voice benchmark results",
            "",
            f"Run started {self.started:%Y-%m-%d %H:%M:%S} UTC. "
            "Ratios are value / baseline; baselines were measured in the same run.",
            "",
            "| Figure | Value | Baseline | Ratio |",
            "|---|---:|---|---:|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows()]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.failures:
            lines += ["", "## Failures", ""] + [f"- {f}" for f in self.failures]
        if self.environment:
            lines += ["", "## Environment", ""]
            lines += [f"- {k}: {v}" for k, v in self.environment.items()]
        return "\n".join(lines) + "\n"

    def _footer(self) -> list[str]:
        lines = []
        if self.notes:
            lines += ["", "Notes:"] + [f"  - {n}" for n in self.notes]
        if self.failures:
            lines += ["", "FAILED:"] + [f"  - {f}" for f in self.failures]
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "environment": self.environment,
            "figures": [f.as_dict() for f in self.figures],
            "notes": self.notes,
            "details": self.details,
            "failures": self.failures,
        }

    def write(self, directory: Path = RESULTS) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        as_json = directory / "latest.json"
        as_md = directory / "latest.md"
        as_json.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        as_md.write_text(self.markdown())
        return as_json, as_md


def host_environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory GiB": memory_gib(),
    }


def memory_gib() -> float | None:
    """Physical memory, from /proc/meminfo (Linux); None elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None
