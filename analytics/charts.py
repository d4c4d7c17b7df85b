"""Charts for the staff dashboard as server-rendered HTML and inline SVG (no JavaScript).

Every bar and point is a link to the conversations behind it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe


@dataclass
class Bar:
    label: str
    value: float
    href: str | None = None
    note: str = ""


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:.1f}"


def hbars(bars: list[Bar], *, unit: str = "", empty: str = "No data in this range.") -> SafeString:
    """Horizontal bars, one row each: label, bar (as long as its share of the largest), value."""
    if not bars or not any(b.value for b in bars):
        return format_html('<p class="chart-empty">{}</p>', empty)
    top = max(b.value for b in bars) or 1
    rows = []
    for bar in bars:
        width = max(0.5, 100 * bar.value / top) if bar.value else 0
        title = f"{bar.label}: {_fmt(bar.value)}{unit}" + (f" — {bar.note}" if bar.note else "")
        inner = format_html(
            '<span class="hbar-label">{}</span><span class="hbar-track">'
            '<span class="hbar-fill" style="width:{}%"></span></span>'
            '<span class="hbar-value">{}{}</span>',
            bar.label,
            f"{width:.1f}",
            _fmt(bar.value),
            unit,
        )
        if bar.href and bar.value:
            rows.append(
                format_html('<a class="hbar" href="{}" title="{}">{}</a>', bar.href, title, inner)
            )
        else:
            rows.append(format_html('<div class="hbar" title="{}">{}</div>', title, inner))
    return format_html('<div class="hbars">{}</div>', mark_safe("".join(rows)))


def vbars(bars: list[Bar], *, unit: str = "") -> SafeString:
    """Vertical bars over days (conversations per day)."""
    if not bars:
        return format_html('<p class="chart-empty">{}</p>', "No days in this range.")
    top = max(b.value for b in bars) or 1
    cols = []
    for bar in bars:
        height = 100 * bar.value / top if bar.value else 0
        title = f"{bar.label}: {_fmt(bar.value)}{unit}"
        fill = format_html(
            '<span class="vbar-fill" style="height:{}%"></span><span class="vbar-value">{}</span>',
            f"{height:.1f}",
            _fmt(bar.value) if bar.value else "",
        )
        if bar.href and bar.value:
            cols.append(
                format_html('<a class="vbar" href="{}" title="{}">{}</a>', bar.href, title, fill)
            )
        else:
            cols.append(format_html('<span class="vbar" title="{}">{}</span>', title, fill))
    labels = format_html_join("", '<span class="vbar-axis">{}</span>', ((b.note,) for b in bars))
    return format_html(
        '<div class="vbars">{}</div><div class="vbars-axis">{}</div>',
        mark_safe("".join(cols)),
        labels,
    )


@dataclass
class Series:
    label: str
    values: list[float | None]
    css: str


@dataclass(frozen=True)
class _Plot:
    """Where a line chart's values land: the plot area inside the axes' margins."""

    days: int
    top_value: float
    width: int
    height: int
    left: int = 56
    right: int = 12
    top_pad: int = 12
    bottom: int = 28

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top_pad - self.bottom

    def x(self, i: int) -> float:
        step = self.plot_w / max(1, self.days - 1)
        return self.left + (i * step if self.days > 1 else self.plot_w / 2)

    def y(self, v: float) -> float:
        return self.top_pad + self.plot_h - self.plot_h * v / self.top_value


def _axes(plot: _Plot, days: list[dt.date], unit: str) -> list[SafeString]:
    """Grid lines at 0, ½ and the top with their values; about eight day labels below."""
    parts: list[SafeString] = []
    for fraction in (0, 0.5, 1):
        value = plot.top_value * fraction
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                plot.left,
                plot.width - plot.right,
                f"{plot.y(value):.1f}",
                f"{plot.y(value):.1f}",
                plot.left - 6,
                f"{plot.y(value) + 4:.1f}",
                _fmt(value) + unit,
            )
        )
    label_every = max(1, len(days) // 8)
    for i, day in enumerate(days):
        if i % label_every == 0:
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    f"{plot.x(i):.1f}",
                    plot.height - 8,
                    day.strftime("%d %b"),
                )
            )
    return parts


def _polylines(plot: _Plot, s: Series) -> list[SafeString]:
    """The series as lines, broken where a day has no value."""
    segments: list[list[str]] = [[]]
    for i, value in enumerate(s.values):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(f"{plot.x(i):.1f},{plot.y(value):.1f}")
    return [
        format_html('<polyline class="{}" points="{}"/>', s.css, " ".join(seg))
        for seg in segments
        if seg
    ]


def _points(
    plot: _Plot, s: Series, days: list[dt.date], href_for_day: Callable[[dt.date], str], unit: str
) -> list[SafeString]:
    """One linked circle per known value, titled with its day, series and value."""
    return [
        format_html(
            '<a href="{}"><circle class="{}" cx="{}" cy="{}" r="4">'
            "<title>{} {}: {}{}</title></circle></a>",
            href_for_day(days[i]),
            s.css,
            f"{plot.x(i):.1f}",
            f"{plot.y(value):.1f}",
            days[i].isoformat(),
            s.label,
            _fmt(value),
            unit,
        )
        for i, value in enumerate(s.values)
        if value is not None
    ]


def line_chart(
    days: list[dt.date],
    series: list[Series],
    *,
    href_for_day: Callable[[dt.date], str],
    unit: str,
    width: int = 720,
    height: int = 200,
) -> SafeString:
    """Lines over days; each point links to that day's conversations. Gaps where no data."""
    known = [v for s in series for v in s.values if v is not None]
    if not known:
        return format_html('<p class="chart-empty">{}</p>', "No finished turns in this range.")
    plot = _Plot(days=len(days), top_value=max(known) * 1.1 or 1, width=width, height=height)
    parts = _axes(plot, days, unit)
    for s in series:
        parts += _polylines(plot, s)
        parts += _points(plot, s, days, href_for_day, unit)
    legend = format_html_join(
        " ", '<span class="legend {}">{}</span>', ((s.css, s.label) for s in series)
    )
    return format_html(
        '<svg class="line-chart" viewBox="0 0 {} {}" role="img">{}</svg><div>{}</div>',
        width,
        height,
        mark_safe("".join(parts)),
        legend,
    )
