# -*- test-case-name: rpctransport.test.test_bench -*-
"""
What a benchmark run found, and how it is shown: the table on standard
output, the JSON file (C{--json}), the plot (C{--plot}).

A run has I{cases} (receive, rate, bulk, udp, memory, scaling, tls); a case has I{measurements} (one
configuration: a record size, a number of calls in flight); a measurement has
I{variants} (what is measured: the stream controller, a bare Twisted
C{Protocol}, the libtirpc server, ...), each with the figures of several
runs, and I{comparisons}: the ratio of one variant's median to a
reference's, measured in the same run, and the target it must reach.

The JSON file (C{"format": "rpctransport-bench 1"})::

    {
      "format": "rpctransport-bench 1",
      "quick": false, "runs": 5, "warmup": 1,
      "started": "2026-01-01T12:00:00Z", "elapsed": 312.4,
      "command": ["python", "-m", "rpctransport.bench", ...],
      "machine": {"cpu": "...", "cores": 2, "kernel": "...", "memory": 25275408384},
      "versions": {"python": "3.11.7", "twisted": "26.10.0", "rpctransport": "...",
                   "libtirpc": "1.3.3+ds-1"},
      "cases": [
        {"id": "receive", "number": 1, "title": "...",
         "skipped": null, "error": null, "notes": [...],
         "measurements": [
           {"id": "receive/1MiB", "title": "1 MiB records", "unit": "MB/s",
            "higher_is_better": true, "params": {...},
            "variants": [
              {"name": "controller", "role": "measured", "runs": [...],
               "median": 3900.1, "min": 3800.2, "max": 3950.0,
               "skipped": null, "error": null}, ...],
            "comparisons": [
              {"variant": "controller", "reference": "bare Protocol",
               "ratio": 0.78, "ratio_min": 0.74, "ratio_max": 0.81,
               "target": {"op": ">=", "value": 0.7}, "met": true}]}]}],
      "summary": {"targets": 16, "met": 10, "missed": 6, "unknown": 0}
    }

C{runs} holds every figure (the warm-up runs are not in it); C{median},
C{min} and C{max} are taken over them. A comparison's C{ratio} is the
variant's median over the reference's median (over C{reference_value} when
the reference is a fixed quantity, such as a record's size); C{ratio_min}
and C{ratio_max} pair the variant's worst run with the reference's best and
the other way round. C{met} is L{None} when a figure is missing (a skipped
variant), and absent targets are L{None}.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "Case",
    "Comparison",
    "FORMAT",
    "Measurement",
    "PlotUnavailable",
    "Report",
    "Target",
    "Variant",
    "machine",
    "plot",
    "rst_tables",
    "table",
]

FORMAT = "rpctransport-bench 1"
"""The C{format} of the JSON file; a change of structure changes it."""


def _fields(value: object, *names: str) -> dict[str, Any]:
    """
    The attributes C{names} of C{value}, by name, in that order: the plain
    part of a C{to_json}.
    """
    return {name: getattr(value, name) for name in names}


@dataclass(frozen=True)
class Target:
    """
    What a comparison must reach: C{ratio OP value}.

    @ivar op: C{">="} or C{"<="}.
    @ivar value: the bound.
    """

    op: str
    value: float

    def met(self, ratio: float) -> bool:
        """
        Whether C{ratio} reaches the target.
        """
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Variant:
    """
    One thing measured in a measurement, with its figures.

    @ivar name: what it is, as the table shows it.
    @ivar role: C{"measured"} (rpctransport) or C{"reference"}.
    @ivar runs: the figure of each run.
    @ivar skipped: why it was not measured, if it was not.
    @ivar error: what went wrong, if something did.
    """

    name: str
    role: str = "measured"
    runs: list[float] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        """
        The median of the runs (L{None} without runs).
        """
        return statistics.median(self.runs) if self.runs else None

    @property
    def min(self) -> float | None:
        """
        The smallest run.
        """
        return min(self.runs) if self.runs else None

    @property
    def max(self) -> float | None:
        """
        The largest run.
        """
        return max(self.runs) if self.runs else None

    def to_json(self) -> dict[str, Any]:
        """
        The variant as in the JSON file.
        """
        return _fields(self, "name", "role", "runs", "median", "min", "max", "skipped", "error")


@dataclass
class Comparison:
    """
    A variant against a reference of the same measurement (or a fixed
    quantity), and its target.

    @ivar variant: the name of the variant compared.
    @ivar reference: the name of the reference variant, or a description of
        C{reference_value}.
    @ivar reference_value: the reference when it is a fixed quantity, not a
        variant.
    @ivar target: what the ratio must reach, if anything.
    """

    variant: str
    reference: str
    target: Target | None = None
    reference_value: float | None = None
    ratio: float | None = None
    ratio_min: float | None = None
    ratio_max: float | None = None

    @property
    def met(self) -> bool | None:
        """
        Whether the target is reached (L{None}: no target, or no ratio).
        """
        if self.target is None or self.ratio is None:
            return None
        return self.target.met(self.ratio)

    def compute(self, measurement: Measurement) -> None:
        """
        Compute the ratios from the measurement's variants.
        """
        mine = measurement.variant(self.variant)
        if mine is None or not mine.runs:
            return
        if self.reference_value is not None:
            low = high = mid = self.reference_value
        else:
            theirs = measurement.variant(self.reference)
            if theirs is None or not theirs.runs:
                return
            assert theirs.median is not None and theirs.min is not None and theirs.max is not None
            low, high, mid = theirs.min, theirs.max, theirs.median
        assert mine.median is not None and mine.min is not None and mine.max is not None
        if mid <= 0 or low <= 0:
            return
        self.ratio = mine.median / mid
        self.ratio_min = mine.min / high
        self.ratio_max = mine.max / low

    def to_json(self) -> dict[str, Any]:
        """
        The comparison as in the JSON file.
        """
        return {
            **_fields(
                self, "variant", "reference", "reference_value", "ratio", "ratio_min", "ratio_max"
            ),
            "target": None
            if self.target is None
            else {"op": self.target.op, "value": self.target.value},
            "met": self.met,
        }


@dataclass
class Measurement:
    """
    One configuration of a case, its variants and comparisons.
    """

    id: str
    title: str
    unit: str
    variants: list[Variant] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True

    def variant(self, name: str) -> Variant | None:
        """
        The variant called C{name}, if there is one.
        """
        for variant in self.variants:
            if variant.name == name:
                return variant
        return None

    def compute(self) -> None:
        """
        Compute every comparison.
        """
        for comparison in self.comparisons:
            comparison.compute(self)

    def to_json(self) -> dict[str, Any]:
        """
        The measurement as in the JSON file.
        """
        return {
            **_fields(self, "id", "title", "unit", "higher_is_better", "params"),
            "variants": [v.to_json() for v in self.variants],
            "comparisons": [c.to_json() for c in self.comparisons],
        }


@dataclass
class Case:
    """
    One of the benchmark's cases.
    """

    id: str
    number: int
    title: str
    measurements: list[Measurement] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """
        The case as in the JSON file.
        """
        return {
            **_fields(self, "id", "number", "title", "skipped", "error", "notes"),
            "measurements": [m.to_json() for m in self.measurements],
        }


@dataclass
class Report:
    """
    A whole run of the benchmark.
    """

    quick: bool
    runs: int
    warmup: int
    started: str
    command: list[str]
    cases: list[Case] = field(default_factory=list)
    elapsed: float = 0.0
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)

    def comparisons(self) -> Iterable[tuple[Case, Measurement, Comparison]]:
        """
        Every comparison, with its case and measurement.
        """
        for case in self.cases:
            for measurement in case.measurements:
                for comparison in measurement.comparisons:
                    yield case, measurement, comparison

    def summary(self) -> dict[str, int]:
        """
        How many targets there are, met, missed, and not known (a figure is
        missing).
        """
        counts = {"targets": 0, "met": 0, "missed": 0, "unknown": 0}
        for _, _, comparison in self.comparisons():
            if comparison.target is None:
                continue
            counts["targets"] += 1
            met = comparison.met
            counts["unknown" if met is None else "met" if met else "missed"] += 1
        return counts

    @property
    def errors(self) -> list[str]:
        """
        What went wrong, case by case and variant by variant.
        """
        found = []
        for case in self.cases:
            if case.error:
                found.append(f"{case.id}: {case.error}")
            for measurement in case.measurements:
                for variant in measurement.variants:
                    if variant.error:
                        found.append(f"{measurement.id} {variant.name}: {variant.error}")
        return found

    def to_json(self) -> dict[str, Any]:
        """
        The report as in the JSON file (see the module's docstring).
        """
        return {
            "format": FORMAT,
            **_fields(
                self,
                "quick", "runs", "warmup", "started", "elapsed", "command", "machine", "versions",
            ),
            "cases": [c.to_json() for c in self.cases],
            "summary": self.summary(),
        }

    def write_json(self, path: str) -> None:
        """
        Write the JSON file.
        """
        with open(path, "w") as out:
            json.dump(self.to_json(), out, indent=1)
            out.write("\n")


def _figure(value: float | None) -> str:
    """
    A figure with three significant digits or so, as the table shows it.
    """
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


_COLUMNS = (
    ("case", "<", 32),
    ("variant", "<", 30),
    ("median", ">", 10),
    ("min", ">", 10),
    ("max", ">", 10),
    ("unit", "<", 10),
    ("ratio", ">", 6),
    ("vs reference", "<", 21),
    ("target", "<", 7),
    ("", "<", 6),
)


def _row(cells: Sequence[str]) -> str:
    return " ".join(
        f"{cell:{align}{width}}" for cell, (_, align, width) in zip(cells, _COLUMNS)
    ).rstrip()


def table(report: Report) -> str:
    """
    The results as a table, one line per variant: case, variant, median, min,
    max, unit, ratio against its reference, the reference, the target, and
    whether it is met. A variant compared with several references has one
    more line per reference.
    """
    lines = [_row([name for name, _, _ in _COLUMNS]), _row(["-" * w for _, _, w in _COLUMNS])]
    for case in report.cases:
        lines += _case_lines(case)
    summary = report.summary()
    lines.append("")
    lines.append(
        f"targets: {summary['targets']}, met {summary['met']}, missed {summary['missed']}"
        + (f", unknown {summary['unknown']}" if summary["unknown"] else "")
    )
    return "\n".join(lines)


def _case_lines(case: Case) -> list[str]:
    """
    The lines of the table for one case: a heading, its measurements, its
    notes.
    """
    heading = f"{case.number}. {case.title}"
    if case.skipped:
        return [f"{heading}: SKIPPED: {case.skipped}"]
    lines = [f"{heading}: ERROR: {case.error}" if case.error else heading]
    for measurement in case.measurements:
        for i, variant in enumerate(measurement.variants):
            label = f"  {measurement.title}" if i == 0 else ""
            lines += _variant_lines(measurement, variant, label)
    for note in case.notes:
        lines.append(f"  note: {note}")
    return lines


def _variant_lines(measurement: Measurement, variant: Variant, label: str) -> list[str]:
    """
    The lines of the table for one variant: its figures against its first
    reference, then one line per other reference.
    """
    name = variant.name + (" (ref)" if variant.role == "reference" else "")
    if variant.skipped or variant.error:
        why = f"skipped: {variant.skipped}" if variant.skipped else f"ERROR: {variant.error}"
        return [_row([label, name]).ljust(62) + " " + why]
    compared = [c for c in measurement.comparisons if c.variant == variant.name]
    lines = [
        _row(_cells(label, name, variant, measurement.unit, compared[0] if compared else None))
    ]
    for comparison in compared[1:]:
        lines.append(_row(_cells("", "", None, "", comparison)))
    return lines


def _cells(
    label: str, name: str, variant: Variant | None, unit: str, comparison: Comparison | None
) -> list[str]:
    cells = [label, name]
    if variant is not None:
        cells += [_figure(variant.median), _figure(variant.min), _figure(variant.max), unit]
    else:
        cells += ["", "", "", ""]
    if comparison is not None:
        cells += [
            "-" if comparison.ratio is None else f"{comparison.ratio:.3g}",
            comparison.reference,
            str(comparison.target or "-"),
            _verdict(comparison),
        ]
    return cells


def _verdict(comparison: Comparison) -> str:
    met = comparison.met
    if comparison.target is None:
        return ""
    return "?" if met is None else "met" if met else "MISSED"


def machine() -> dict[str, Any]:
    """
    What the figures were measured on: CPU model, cores usable here, kernel,
    memory.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": cores,
        "kernel": f"{platform.system()} {platform.release()}",
        "memory": memory,
        "platform": platform.platform(),
    }


def versions(libtirpc: Callable[[], str | None]) -> dict[str, str | None]:
    """
    The versions of what was measured.
    """
    import twisted

    from .._version import __version__

    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "twisted": twisted.__version__,
        "rpctransport": __version__,
        "libtirpc": libtirpc(),
    }


class PlotUnavailable(Exception):
    """
    matplotlib is not installed.
    """


def plot(report: Report, path: str) -> None:
    """
    Draw the report into a PNG file: every targeted comparison as its figure
    divided by its target (1 and more: met), with the range of its runs; and
    the receive throughput of case 1 against the record size.

    @raise PlotUnavailable: without matplotlib (C{pip install
        rpctransport[plot]}).
    """
    plt = _pyplot()
    targeted = [
        (case, measurement, comparison)
        for case, measurement, comparison in report.comparisons()
        if comparison.target is not None
    ]
    receive = next((c for c in report.cases if c.id == "receive" and c.measurements), None)
    figure, axes = plt.subplots(
        1, 2 if receive else 1, figsize=(13 if receive else 8, max(4.0, 0.32 * len(targeted) + 1.5)),
        squeeze=False,
    )
    _plot_targets(axes[0][0], targeted)
    if receive is not None:
        _plot_receive(axes[0][1], receive)
    m = report.machine
    figure.suptitle(
        f"rpctransport bench{' --quick' if report.quick else ''}: {m.get('cpu')}, "
        f"{m.get('cores')} cores, Python {report.versions.get('python')}, "
        f"Twisted {report.versions.get('twisted')}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _pyplot() -> Any:
    """
    C{matplotlib.pyplot}, drawing into files (the Agg backend).

    @raise PlotUnavailable: without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'rpctransport[plot]' "
            "(or pip install matplotlib)"
        ) from None
    return plt


def _score(target: Target, ratio: float | None) -> float:
    """
    C{ratio} as a multiple of C{target}: 1 or more when it is met.
    """
    if ratio is None or ratio <= 0:
        return 0.0
    return ratio / target.value if target.op == ">=" else target.value / ratio


def _plot_targets(ax: Any, targeted: list[tuple[Case, Measurement, Comparison]]) -> None:
    """
    One bar per targeted comparison: its figure over its target, whiskers
    for its worst and best runs.
    """
    labels, values, lows, highs, colours = [], [], [], [], []
    for case, measurement, comparison in targeted:
        assert comparison.target is not None
        labels.append(f"{case.number}. {measurement.title}: {comparison.variant} vs {comparison.reference}")
        if comparison.ratio is None:
            values.append(0.0)
            lows.append(0.0)
            highs.append(0.0)
            colours.append("lightgrey")
            continue
        value = _score(comparison.target, comparison.ratio)
        ends = sorted(
            (_score(comparison.target, comparison.ratio_min),
             _score(comparison.target, comparison.ratio_max))
        )
        values.append(value)
        lows.append(max(0.0, value - ends[0]))
        highs.append(max(0.0, ends[1] - value))
        colours.append("tab:green" if comparison.met else "tab:red")
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, values, xerr=[lows, highs], color=colours, capsize=2)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("figure / target (1 or more: target met); whiskers: worst and best runs")
    ax.set_title("Targets", fontsize=10)


def _receive_series(receive: Case) -> dict[str, list[tuple[int, float]]]:
    """
    The median receive rate of each variant of case 1, in MB/s of payload,
    against the record size (single-fragment records only).
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for measurement in receive.measurements:
        if measurement.params.get("fragment"):
            continue
        size = int(measurement.params.get("size", 0))
        for variant in measurement.variants:
            if variant.median is None:
                continue
            rate = variant.median
            if measurement.unit == "records/s":
                rate = rate * size / 1e6
            series.setdefault(variant.name, []).append((size, rate))
    for points in series.values():
        points.sort()
    return series


def _plot_receive(ax: Any, receive: Case) -> None:
    """
    Case 1's receive throughput against the record size, one line per
    variant.
    """
    series = _receive_series(receive)
    for name, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted({p[0] for points in series.values() for p in points})
    ax.set_xticks(sizes)
    ax.set_xticklabels([_size_label(size) for size in sizes])
    ax.minorticks_off()
    ax.set_xlabel("record size (bytes)")
    ax.set_ylabel("MB/s of payload received (median)")
    ax.set_title("1. Receive throughput", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def _size_label(size: int) -> str:
    for unit, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


RST_HEADER = (
    ".. Written by rpctransport bench --rst (rpctransport.bench.report.rst_tables)\n"
    "   from a run's JSON file: do not edit it, run the benchmark again.\n"
)
"""The comment that opens what L{rst_tables} writes."""


def rst_tables(data: Mapping[str, Any]) -> str:
    """
    The cases of a run as reStructuredText, for a chapter to include: per
    measurement a C{list-table} (each variant's median, the range of its
    runs, its ratios against its references, with their ranges), then the
    case's notes, and a paragraph saying how, when and on what the figures
    were measured.

    @param data: the run, as in the JSON file (L{Report.to_json}, or the
        file read back).
    @return: the text, ending with a newline; the same C{data} always gives
        the same text.
    """
    lines = [RST_HEADER]
    for case in data["cases"]:
        lines += _rst_case(case)
    lines += _rst_provenance(data)
    return "\n".join(lines).rstrip("\n") + "\n"


def _rst_case(case: Mapping[str, Any]) -> list[str]:
    if case["skipped"]:
        return [f"{case['title']}: not measured: {case['skipped']}", ""]
    if case["error"]:
        return [f"{case['title']}: the run failed: {case['error']}", ""]
    lines: list[str] = []
    for measurement in case["measurements"]:
        lines += _rst_measurement(measurement)
    if case["notes"]:
        lines += [f"- {note}" for note in case["notes"]] + [""]
    return lines


def _rst_measurement(measurement: Mapping[str, Any]) -> list[str]:
    """
    One measurement as a C{list-table}: a row per variant, with a line in
    its last two cells per comparison it is the variant of.
    """
    lines = [
        f".. list-table:: {measurement['title']}",
        "   :header-rows: 1",
        "",
        "   * - variant",
        f"     - {measurement['unit']}, median",
        "     - runs, min to max",
        "     - ratio (range)",
        "     - against",
    ]
    for variant in measurement["variants"]:
        name = f"``{variant['name']}``"
        if variant["role"] == "reference":
            name += " (reference)"
        if variant["skipped"] or variant["error"]:
            why = variant["skipped"] or f"failed: {variant['error']}"
            cells = [name, f"not measured: {_rst_line(why)}", "", "", ""]
        else:
            compared = [c for c in measurement["comparisons"] if c["variant"] == variant["name"]]
            cells = [
                name,
                _figure(variant["median"]),
                f"{_figure(variant['min'])} to {_figure(variant['max'])}",
                " | ".join(_rst_ratio(c) for c in compared),
                " | ".join(f"``{c['reference']}``" for c in compared),
            ]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {cell}".rstrip() for cell in cells[1:]]
    return lines + [""]


def _rst_ratio(comparison: Mapping[str, Any]) -> str:
    """
    A comparison's ratio, the range of its runs, and its target's verdict.
    """
    if comparison["ratio"] is None:
        text = "unknown"
    else:
        text = (
            f"{comparison['ratio']:.2f} ({comparison['ratio_min']:.2f} to "
            f"{comparison['ratio_max']:.2f})"
        )
    target = comparison["target"]
    if target is not None:
        verdict = {True: "met", False: "missed", None: "unknown"}[comparison["met"]]
        text += f", target {target['op']} {target['value']:g}: {verdict}"
    return text


def _rst_line(text: str) -> str:
    """
    C{text} on one line, for a table cell.
    """
    return " ".join(str(text).split())


def _rst_provenance(data: Mapping[str, Any]) -> list[str]:
    """
    How, when and on what the figures were measured.
    """
    machine_ = data["machine"]
    versions_ = data["versions"]
    cases = [case["id"] for case in data["cases"]]
    command = data.get("command", [])
    arguments = command[3:] if command[1:3] == ["-m", "rpctransport.bench"] else command[1:]
    memory = machine_.get("memory")
    memory_text = f", {memory / (1 << 30):.0f} GiB" if memory else ""
    software = ", ".join(
        f"{name} {versions_[key]}"
        for key, name in (("python", "CPython"), ("twisted", "Twisted"), ("libtirpc", "libtirpc"))
        if versions_.get(key)
    )
    return [
        f"Measured by ``{' '.join(['rpctransport bench', *arguments])}`` "
        f"({', '.join(cases)}), started {data['started']}: each figure is the median "
        f"of {data['runs']} runs"
        + (f" after {data['warmup']} warm-up" if data["warmup"] else "")
        + "; a ratio is the variant's median over its reference's, measured in the same "
        "run, and its range the variant's lowest run over the reference's highest, and "
        f"its highest over their lowest. Machine: {machine_.get('cpu')}, "
        f"{machine_.get('cores')} cores"
        f"{memory_text}, {machine_.get('kernel')}; {software}"
        + (" (a quick run: a smoke test, not a measurement)." if data["quick"] else "."),
    ]


def write_table(report: Report, out: TextIO = sys.stdout) -> None:
    """
    Print the table.
    """
    out.write(table(report) + "\n")
    out.flush()
