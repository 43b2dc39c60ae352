"""Stacked bar charts as inline SVG, made on the server: no chart library, nothing to download."""

from __future__ import annotations

import math

from markupsafe import Markup, escape

PALETTE = ["#4f9dff", "#f5a524", "#e5484d", "#30a46c", "#a371f7", "#12a5b8", "#d6409f", "#8d8d8d"]
OTHER = "other"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def top_groups(
    counts: dict[str, list[int]], groups: list[str], keep: int = len(PALETTE) - 1
) -> dict[str, list[int]]:
    """The busiest ``keep`` groups, and the rest summed as "other", so the chart stays readable."""
    shown = {group: counts[group] for group in groups[:keep]}
    rest = groups[keep:]
    if rest:
        shown[OTHER] = [sum(column) for column in zip(*(counts[g] for g in rest), strict=True)]
    return shown


def stacked_bars(
    labels: list[str], series: dict[str, list[int]], title: str, width: int = 900, height: int = 260
) -> Markup:
    left, bottom, top = 40, 36, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(values) for values in zip(*series.values(), strict=True)] if series else [0] * len(labels)
    step_value = _tick_step(max(totals + [1]))
    peak = step_value * math.ceil(max(totals + [1]) / step_value)
    step = plot_w / max(len(labels), 1)
    bar_w = max(step * 0.7, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for value in range(0, peak + 1, step_value):
        y = top + plot_h * (1 - value / peak)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value}</text>')
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar_w) / 2
        y = top + plot_h
        for index, (group, values) in enumerate(series.items()):
            if values[i]:
                h = plot_h * values[i] / peak
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour(index)}">'
                    f"<title>{escape(label)} · {escape(group)}: {values[i]}</title></rect>"
                )
        if len(labels) <= 16 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" class="axis" text-anchor="middle">'
                f"{escape(_tick(label))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _tick_step(peak: int) -> int:
    """A whole step of 1, 2 or 5 times a power of ten giving at most five gridlines up to ``peak``."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if peak / (factor * magnitude) <= 5:
                return factor * magnitude
        magnitude *= 10


def _tick(label: str) -> str:
    # "2026-11-21T13" -> "13:00", "2026-11-21" -> "21.11": read the same in every language
    if "T" in label:
        return label.split("T")[1] + ":00"
    return f"{label[8:10]}.{label[5:7]}"
