"""The run as a report: one self-contained HTML file, and its charts as PNG for slides.

    from attribution.report import write_report
    write_report(result, "report.html", png_dir="slides")

:func:`build_report` returns the HTML text; :func:`report_charts` the charts (Vega-Lite specs
titled by their finding), which :func:`write_pngs` draws without a browser. The scorecard and
budget sections appear when their tables are given. Nothing here prints.
"""

from __future__ import annotations

from attribution.report.charts import Chart
from attribution.report.html import build_report, headline_figures, report_charts, write_report
from attribution.report.png import chart_png, write_pngs

__all__ = [
    "Chart",
    "build_report",
    "chart_png",
    "headline_figures",
    "report_charts",
    "write_pngs",
    "write_report",
]
