"""The report in a real browser: headless Chromium draws every chart, logs nothing, and the page
is screenshotted.

Skipped when no Chromium is installed, unless the environment variable CI is set (then it
fails: CI installs the Debian package ``chromium``). Set ATTRIBUTION_SCREENSHOT=path to keep
the screenshot (docs/report.png is made that way from the demo export).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from attribution import pipeline
from attribution.budget import recommend_budget
from attribution.config import load_config
from attribution.economics import channel_scorecard, first_touch_leads
from attribution.report import report_charts, write_report
from attribution.spend import load_spend

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.slow  # headless Chromium
DEMO = ROOT / "fixtures" / "demo" / "attribution.toml"
ECONOMICS = ROOT / "fixtures" / "economics"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=10000",
]


def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Chromium is installed (apt-get install -y chromium)")
        pytest.skip("no Chromium installed")
    return found


def run_browser(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [browser(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def demo_inputs():
    """The demo export with its scorecard and budget (the economics fixture when absent)."""
    if (DEMO.parent / "touchpoints.csv").exists():
        config = load_config(DEMO)
        params = dict(config.model_params)
        params["markov"] = {**params.get("markov", {}), "bootstrap": 100}
        config = config.replace(model_params=params)
    else:  # pragma: no cover - before the demo export exists
        config = load_config(None).replace(
            touchpoints=ECONOMICS / "touchpoints.csv", deals=ECONOMICS / "deals.csv",
            contacts=ECONOMICS / "contacts.csv", spend=ECONOMICS / "spend.csv",
            model_params={"markov": {"bootstrap": 20}},
        )
    result = pipeline.run(config)
    scorecard = budget = None
    if config.spend is not None and result.inputs is not None:
        spend = load_spend(config.spend, currency=result.currency)
        leads = first_touch_leads(result.inputs.touchpoints, result.inputs.contacts)
        models = [m for m in ("markov", "linear", "last_touch")
                  if m in {x.name for x in result.models}]
        scorecard = channel_scorecard(result.credit, result.journeys, leads, spend, models=models)
        budget = recommend_budget(result.summary, spend, models[0])
    return result, scorecard, budget


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    browser()
    folder = tmp_path_factory.mktemp("report")
    result, scorecard, budget = demo_inputs()
    path = write_report(result, folder / "report.html", scorecard=scorecard, budget=budget)
    names = [c.name for c in report_charts(result, budget=budget)]
    return path, names, folder


def chart_element(dom: str, name: str) -> tuple[str, str]:
    """The opening tag of chart ``name``'s container and what follows it up to its section's end."""
    at = dom.find(f'id="chart-{name}"')
    assert at >= 0, f"no container for {name}"
    start = dom.rfind("<", 0, at)
    end = dom.find(">", at)
    close = dom.find("</section>", end)
    following = dom.find('id="chart-', end)
    if 0 <= following < close:
        close = following
    return dom[start:end + 1], dom[end + 1:close]


def test_every_chart_renders_without_errors(report):
    path, names, folder = report
    done = run_browser(["--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()],
                       folder / "profile-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'id="headline"' in dom
    assert "data-errors" not in dom.split(">", 2)[1], dom[:500]  # the <html> tag records errors
    for name in names:
        attributes, content = chart_element(dom, name)
        assert 'data-rendered="true"' in attributes, f"{name} did not render: {attributes}"
        assert "data-error" not in attributes
        assert content.count("<svg") >= 1, f"{name} has no SVG"
        assert content.count("<path") + content.count("<rect") + content.count("<text") > 5, name
    console = [line for line in done.stderr.splitlines()
               if ":CONSOLE" in line and path.name in line]
    assert console == [], console  # the report logs nothing when all is well


def test_screenshot(report):
    path, _, folder = report
    target = Path(os.environ.get("ATTRIBUTION_SCREENSHOT") or folder / "report.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    done = run_browser(["--window-size=1400,12000", f"--screenshot={target}", path.as_uri()],
                       folder / "profile-shot")
    assert done.returncode == 0, done.stderr[-2000:]
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1400, 12000)
    assert len(data) > 100_000  # charts and text, not a blank page
