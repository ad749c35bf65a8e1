"""The page around the charts: CSS and the script that draws them (no external resource)."""

from __future__ import annotations

# a trailing backslash joins a long CSS line to the next (the text is one line, unchanged)
CSS = """
:root { --creation: #009E73; --capture: #0072B2; --other: #9AA0A6; --ink: #111827;
        --muted: #4B5563; --line: #E5E7EB; --panel: #F9FAFB; }
* { box-sizing: border-box; }
body { overflow-wrap: anywhere; }
body { margin: 0; font-family: "Helvetica Neue", Helvetica, Arial, "Liberation Sans", sans-serif;
       color: var(--ink); background: #fff; line-height: 1.45; font-size: 15px; }
header.top { padding: 28px 40px 20px; border-bottom: 1px solid var(--line); \
background: var(--panel); }
header.top h1 { margin: 0 0 4px; font-size: 28px; letter-spacing: -0.01em; }
header.top p { margin: 0; color: var(--muted); }
nav { padding: 10px 40px; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { color: var(--muted); margin-right: 16px; text-decoration: none; }
nav a:hover { color: var(--ink); text-decoration: underline; }
main { max-width: 1240px; margin: 0 auto; padding: 8px 40px 60px; }
section { margin-top: 36px; }
section > h2 { font-size: 13px; text-transform: uppercase; letter-spacing: 0.08em; \
color: var(--muted);
               margin: 0 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3.finding { font-size: 21px; margin: 8px 0 2px; line-height: 1.3; }
p.subtitle { color: var(--muted); margin: 0 0 12px; font-size: 14px; }
p.note { color: var(--muted); font-size: 13px; }
.chart { min-height: 80px; overflow-x: auto; max-width: 100%; }
/* a chart drawn wider than a narrow screen is scaled down to it, not cut off */
.chart svg, .chart canvas { max-width: 100%; height: auto; }
/* on a phone a wide table scrolls in its own box; channel names stay whole; a chart keeps
   its text readable and scrolls in its box instead of shrinking to the screen */
@media (max-width: 600px) {
  table { display: block; overflow-x: auto; max-width: 100%; }
  td:first-child, th:first-child { white-space: nowrap; }
  .chart svg, .chart canvas { max-width: none; }
}
/* headers are ours: they wrap between words, never inside one; a name column is wide enough
   for a model's or a channel's usual name before it wraps */
th { overflow-wrap: normal; word-break: normal; }
td:first-child { min-width: 9em; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; margin-top: 14px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; background: #fff; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; \
color: var(--muted); }
.card .value { font-size: 26px; font-weight: 700; margin: 2px 0; \
font-variant-numeric: tabular-nums; }
.card .detail { font-size: 13px; color: var(--muted); }
.legend-groups { font-size: 13px; color: var(--muted); margin-top: 10px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; \
margin: 0 4px 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0 4px;
        font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; \
vertical-align: top; }
th { font-weight: 600; color: var(--muted); background: var(--panel); position: sticky; top: 0; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; \
word-break: break-all; }
tr.total td { font-weight: 700; border-top: 2px solid #9CA3AF; }
.pos { color: #047857; } .neg { color: #B91C1C; }
.group-demand_creation { color: var(--creation); font-weight: 600; }
.group-demand_capture { color: var(--capture); font-weight: 600; }
details { margin: 10px 0; }
details > summary { cursor: pointer; color: var(--muted); font-size: 13px; }
dl.settings { display: grid; grid-template-columns: 220px 1fr; gap: 4px 16px; font-size: 14px; }
dl.settings dt { color: var(--muted); } dl.settings dd { margin: 0; }
.wide { overflow-x: auto; }
footer { color: var(--muted); font-size: 12px; margin-top: 48px; border-top: 1px solid var(--line);
         padding-top: 10px; }
.warning { border: 1px solid #F59E0B; background: #FFFBEB; border-radius: 8px; margin-top: 20px;
           padding: 8px 16px; font-size: 14px; }
.warning ul { margin: 4px 0; padding-left: 18px; }
.few { color: #B45309; font-size: 12px; white-space: nowrap; }
/* a budget move the data does not support: greyed, never read as a recommendation */
tr.unsupported td { color: #9CA3AF; }
tr.unsupported td span[class^="group-"], tr.unsupported td .pos, tr.unsupported td .neg { \
color: #9CA3AF; }
table.budget td .few { white-space: normal; }
table.scorecard th { white-space: normal; }
@media (max-width: 700px) {
  header.top, nav { padding-left: 14px; padding-right: 14px; }
  main { padding: 8px 14px 40px; }
  .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  dl.settings { grid-template-columns: minmax(0, 1fr); }
  .card .value { font-size: 20px; }
}
@media print { nav { display: none; } section { break-inside: avoid; } }
"""

#: records any script error on <html data-errors="..."> so a reader (or a test) can see it
ERROR_SCRIPT = """
(function () {
  var root = document.documentElement;
  function record(message) {
    var previous = root.getAttribute("data-errors");
    root.setAttribute("data-errors", (previous ? previous + " | " : "") + message);
  }
  window.addEventListener("error", function (event) { record(String(event.message)); });
  window.addEventListener("unhandledrejection", function (event) { record(String(event.reason)); });
  var original = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
"""

#: draws every chart; marks each container data-rendered / data-error for tests and readers
EMBED_SCRIPT = """
(function () {
  var specs = JSON.parse(document.getElementById("report-specs").textContent);
  var options = JSON.parse(document.getElementById("report-embed-options").textContent);
  Object.keys(specs).forEach(function (name) {
    var element = document.getElementById("chart-" + name);
    if (!element) { return; }
    vegaEmbed(element, specs[name], options).then(function () {
      element.setAttribute("data-rendered", "true");
    }).catch(function (error) {
      element.setAttribute("data-error", String(error));
      console.error("chart " + name + ": " + error);
    });
  });
})();
"""
