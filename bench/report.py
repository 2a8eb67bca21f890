"""Rows of results, the Markdown table printed at the end, and the JSON
written beside it for comparison over time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from timing import Summary, summarize


@dataclass(frozen=True)
class Target:
    """`subject`'s median must be at most `bound` times `reference`'s
    median, or at most `bound` (in raw units) when there is no reference."""

    subject: str
    reference: str | None
    bound: float
    text: str

    def met(self, row: "Row") -> bool | None:
        value = row.median(self.subject)
        if value is None:
            return None
        if self.reference is None:
            return value <= self.bound
        ref = row.median(self.reference)
        return None if ref is None else value <= self.bound * ref


@dataclass
class Row:
    key: str
    title: str
    unit: str
    # Raw samples are divided by this for display (ns -> ms: 1e6).
    scale: float
    target: Target | None = None
    results: dict[str, Summary] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def fill(self, samples: dict[str, Sequence[float]], errors: dict[str, str]) -> None:
        self.results.update({name: summarize(values) for name, values in samples.items() if values})
        self.errors.update(errors)

    def median(self, name: str) -> float | None:
        summary = self.results.get(name)
        return summary.median if summary else None

    def ratio(self, name: str, reference: str) -> float | None:
        value, ref = self.median(name), self.median(reference)
        if value is None or not ref:
            return None
        return value / ref

    def runs(self) -> int:
        return max((s.n for s in self.results.values()), default=0)

    def to_json(self) -> dict:
        met = self.target.met(self) if self.target else None
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "results": {name: s.to_json(self.scale) for name, s in self.results.items()},
            "errors": self.errors,
            "notes": self.notes,
            "target": None if self.target is None else {"text": self.target.text, "met": met},
        }


def _number(value: float) -> str:
    """Three significant digits, more for large values."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(row: Row, name: str, footnotes: list[str]) -> str:
    if name in row.results:
        text = _number(row.results[name].median / row.scale)
        note = row.notes.get(name)
        return f"{text} ({note})" if note else text
    if name in row.errors:
        footnotes.append(f"{row.key} / {name}: {row.errors[name]}")
        short = "n/a" if row.errors[name].startswith("n/a") else "error"
        return f"{short} [{len(footnotes)}]"
    return "–"


def _ratio_cell(row: Row, name: str, reference: str) -> str:
    ratio = row.ratio(name, reference)
    if ratio is None:
        return "–"
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def _target_cells(row: Row) -> list[str]:
    if row.target is None:
        return ["", ""]
    met = row.target.met(row)
    return [row.target.text, {True: "yes", False: "**no**", None: "?"}[met]]


def markdown_table(rows: Sequence[Row], subjects: Sequence[str], ratios: Sequence[tuple[str, str]]) -> str:
    """One line per row: medians per subject, the ratios asked for, n, target."""
    header = ["benchmark", *subjects, *(f"{a}/{b}" for a, b in ratios), "runs", "target", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes: list[str] = []
    for row in rows:
        cells = [f"{row.title} ({row.unit})"]
        cells += [_cell(row, name, footnotes) for name in subjects]
        cells += [_ratio_cell(row, a, b) for a, b in ratios]
        cells += [str(row.runs())] + _target_cells(row)
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"[{i}] {text}" for i, text in enumerate(footnotes, 1)]
    return "\n".join(lines)


def pair_table(rows: Sequence[Row], subject: str) -> str:
    """Rows where `subject` is compared with one other tool each (bale vs
    umoci or skopeo): the other tool is named in its cell."""
    header = ["benchmark", subject, "compared with", f"{subject}/other", "runs", "target", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes: list[str] = []
    for row in rows:
        others = [name for name in [*row.results, *row.errors] if name != subject]
        other = others[0] if others else ""
        other_cell = f"{other} {_cell(row, other, footnotes)}" if other else "–"
        cells = [f"{row.title} ({row.unit})", _cell(row, subject, footnotes), other_cell,
                 _ratio_cell(row, subject, other) if other else "–", str(row.runs()), *_target_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"[{i}] {text}" for i, text in enumerate(footnotes, 1)]
    return "\n".join(lines)


def write_json(path: Path, meta: dict, rows: Sequence[Row]) -> None:
    """Atomically: a reader never sees half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": [row.to_json() for row in rows]}, indent=1))
    tmp.replace(path)
