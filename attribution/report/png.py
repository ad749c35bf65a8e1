"""The report's charts as PNG images for slides, drawn by vl-convert (no browser, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attribution.errors import ConfigError
from attribution.report import theme
from attribution.report.charts import Chart


def chart_png(chart: Chart, *, currency: str = "USD", scale: float = 2.0) -> bytes:
    """One chart, titled with its finding, as PNG bytes (``scale`` 2: sharp on a slide)."""
    try:
        import vl_convert
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(
            "PNG charts need the vl-convert-python package: pip install vl-convert-python"
        ) from None
    return bytes(
        vl_convert.vegalite_to_png(
            chart.titled(),
            scale=scale,
            config=theme.vega_config(),
            format_locale=theme.format_locale(currency),
            allowed_base_urls=[],
        )
    )


def write_pngs(
    charts: Sequence[Chart], directory: str | Path, *, currency: str = "USD", scale: float = 2.0
) -> list[Path]:
    """Write every chart to ``directory/<name>.png``; returns the paths in chart order.

    Examples
    --------
    >>> write_pngs(report_charts(result), "slides")  # doctest: +SKIP
    [PosixPath('slides/credit_by_model.png'), ...]
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        path = target / f"{chart.name}.png"
        path.write_bytes(chart_png(chart, currency=currency, scale=scale))
        written.append(path)
    return written
