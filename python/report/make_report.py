#!/usr/bin/python3
"""Turn the clearing day of `marginet demo` (DAY_DIR/day.json) into one self-contained HTML report.

Run it with Debian's Python 3 and matplotlib (apt-get install python3-matplotlib):

    /usr/bin/python3 python/report/make_report.py DAY_DIR

It writes DAY_DIR/report.html and prints that path. The page has no external resources: the
plots are PNGs made with matplotlib (Agg) and inlined as data: URIs, the CSS and the script are
inline. Each section is a title, a plot and one sentence, computed from the data, saying what
the plot shows: the IM distribution, the largest accounts, the scenario P&L of the largest
account, collateral coverage, netting per asset, the settlement timeline and the default
waterfall. A script at the end of <body> records on <body>, after window.load, data-images,
data-images-loaded and data-errors, which scripts/check-report.sh reads in a headless browser.

The binary carries this file (cmake/EmbedText.cmake): `marginet demo` writes it next to
day.json and runs it, so it imports nothing of the repository. python/report/sample_day.json is
a sample day to try it without the C++ demo. "device", "im_by_methodology" and "ledger" are
optional (shown in the header when present); "default" must be there, null when no member
defaulted. Exit 0 on success, 2 when day.json is missing or invalid (the message names the file
and the field) or when matplotlib is not installed.
"""

import base64
import html
import io
import json
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import ticker
    from matplotlib.patches import Patch
except ImportError:
    plt = None

DPI = 100
FIG_WIDTH = 12  # inches: about the page's 1060 px text width once trimmed
COLOURS = {"bar": "#4c72b0", "gain": "#55a868", "loss": "#8c8c8c", "worst": "#c44e52",
           "ok": "#4c72b0", "called": "#c44e52", "net": "#dd8452", "rolled": "#dd8452",
           "final": "#55a868", "defaulted": "#c44e52", "loss_total": "#333333"}

NUMBER = (int, float)
# Fields each part of day.json must have, with their types. Other fields are ignored.
TOP_FIELDS = {"day": str, "started_at": NUMBER, "model": str, "currency": str, "summary": list,
              "accounts": list, "largest_account": dict, "netting": list, "cycles": list}
ACCOUNT_FIELDS = {"account": str, "im": NUMBER, "collateral_value": NUMBER, "call": NUMBER,
                  "worst_scenario_label": str}
LARGEST_FIELDS = {"account": str, "labels": list, "pnl": list, "worst_scenario": int}
NETTING_FIELDS = {"asset": str, "gross": NUMBER, "net": NUMBER, "efficiency": NUMBER}
CYCLE_FIELDS = {"cycle_id": str, "opened_s": NUMBER, "closed_s": NUMBER, "instructions": int,
                "final": int, "defaulted": int, "rolled": int}
DEFAULT_FIELDS = {"default_id": str, "member": str, "loss": NUMBER, "uncovered": NUMBER, "steps": list}
STEP_FIELDS = {"layer": str, "available": NUMBER, "absorbed": NUMBER}
METHODOLOGY_FIELDS = {"model": str, "total_im": NUMBER}
LEDGER_FIELDS = {"entries": int, "root": str, "proof_entry": int, "verified": bool}


class DayError(Exception):
    """day.json cannot be read or lacks a field; the message names the field."""


# ---- reading day.json ---------------------------------------------------------------------

def type_name(types):
    """'a number', 'a string', ... for an error message."""
    if types is NUMBER:
        return "a number"
    return {int: "an integer", str: "a string", list: "a list", dict: "an object", bool: "true or false"}[types]


def has_type(value, types):
    """isinstance, except that a JSON true/false is not a number."""
    if isinstance(value, bool) and types is not bool:
        return False
    return isinstance(value, types)


def require(obj, fields, where):
    """Checks that obj is an object with each field of `fields` of its type."""
    if not isinstance(obj, dict):
        raise DayError(f"'{where}' must be an object" if where else "the document must be a JSON object")
    for name, types in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in obj:
            raise DayError(f"missing field '{path}'")
        if not has_type(obj[name], types):
            raise DayError(f"field '{path}' must be {type_name(types)}")


def require_each(items, fields, where):
    """require() for each element of a list."""
    for i, item in enumerate(items):
        require(item, fields, f"{where}[{i}]")


def check_summary(rows):
    """summary is a list of [label, text] pairs of strings."""
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(c, str) for c in row)):
            raise DayError(f"field 'summary[{i}]' must be a [label, text] pair of strings")


def check_largest(largest):
    """The largest account's P&L vector matches its labels and names a scenario of it."""
    require(largest, LARGEST_FIELDS, "largest_account")
    labels, pnl = largest["labels"], largest["pnl"]
    if not pnl or len(labels) != len(pnl):
        raise DayError("fields 'largest_account.labels' and 'largest_account.pnl' must be non-empty "
                       "and of the same length")
    if not all(has_type(v, NUMBER) for v in pnl):
        raise DayError("field 'largest_account.pnl' must be a list of numbers")
    if not 1 <= largest["worst_scenario"] <= len(pnl):
        raise DayError(f"field 'largest_account.worst_scenario' must be a scenario id from 1 to {len(pnl)}")


def check_day(day):
    """Raises DayError naming the first missing or mistyped field."""
    require(day, TOP_FIELDS, "")
    check_summary(day["summary"])
    if not day["accounts"]:
        raise DayError("field 'accounts' is empty")
    require_each(day["accounts"], ACCOUNT_FIELDS, "accounts")
    check_largest(day["largest_account"])
    require_each(day["netting"], NETTING_FIELDS, "netting")
    require_each(day["cycles"], CYCLE_FIELDS, "cycles")
    if "default" not in day:
        raise DayError("missing field 'default' (null when no member defaulted)")
    if day["default"] is not None:
        require(day["default"], DEFAULT_FIELDS, "default")
        require_each(day["default"]["steps"], STEP_FIELDS, "default.steps")
    require_each(day.get("im_by_methodology", []), METHODOLOGY_FIELDS, "im_by_methodology")
    if "ledger" in day:
        require(day["ledger"], LEDGER_FIELDS, "ledger")


def load_day(path):
    """The parsed and checked day.json."""
    try:
        day = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DayError(f"cannot read it: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DayError(f"not valid JSON: {e}") from e
    check_day(day)
    return day


# ---- formatting ---------------------------------------------------------------------------

def compact(value):
    """3 significant digits with a k/M/bn suffix: 1,526,901 -> '1.53M'."""
    for divisor, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= divisor * 0.9995:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.3g}"


def percent(fraction):
    """0.6103 -> '61 %' (a no-break space before the sign)."""
    return f"{fraction * 100:.0f}\u00a0%"


def plural(count, noun):
    """'1 instruction', '3 instructions'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def pretty_layer(layer):
    """'survivors_contributions' -> 'survivors contributions'."""
    return layer.replace("_", " ")


def compact_axis(axis, log=False):
    """Tick labels of a money/amount axis in compact form; no labels on log minor ticks."""
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: compact(v)))
    if log:
        axis.set_minor_formatter(ticker.NullFormatter())


def figure_uri(fig):
    """The figure as a data:image/png;base64 URI; closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Section:
    """One part of the report: a title, a plot (None for a sentence only) and a sentence."""

    def __init__(self, title, image, caption):
        self.title, self.image, self.caption = title, image, caption


# ---- the sections -------------------------------------------------------------------------

def im_distribution(day):
    """a. Histogram of IM per account, log x when the IMs span more than 2 decades."""
    ccy = day["currency"]
    ims = np.array([a["im"] for a in day["accounts"] if a["im"] > 0])
    if ims.size == 0:
        return Section("Initial margin across accounts", None, "No account needs initial margin today.")
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.6))
    log = ims.max() / ims.min() > 100
    bins = np.geomspace(ims.min(), ims.max(), 20) if log else 20
    ax.hist(ims, bins=bins, color=COLOURS["bar"], edgecolor="white")
    median = float(np.median(ims))
    ax.axvline(median, color=COLOURS["worst"], linestyle="--", label=f"median {compact(median)} {ccy}")
    if log:
        ax.set_xscale("log")
    compact_axis(ax.xaxis, log)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel(f"initial margin per account ({ccy}{', log scale' if log else ''})")
    ax.set_ylabel("accounts (count)")
    ax.legend()
    caption = (f"IM per account ranges from {compact(ims.min())} to {compact(ims.max())} {ccy} across "
               f"{ims.size} accounts; the median account needs {compact(median)} {ccy}, the mean "
               f"{compact(ims.mean())} {ccy}.")
    zero = len(day["accounts"]) - ims.size
    if zero:
        caption += f" {zero} accounts with no IM are not drawn."
    return Section("Initial margin across accounts", figure_uri(fig), caption)


def largest_accounts(day, count=20):
    """b. The largest accounts by IM, each bar labelled with its worst scenario."""
    ccy = day["currency"]
    total = sum(a["im"] for a in day["accounts"])
    if total <= 0:
        return Section("The largest accounts by IM", None, "No account needs initial margin today.")
    ranked = sorted(day["accounts"], key=lambda a: a["im"], reverse=True)[:count]
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.3 * len(ranked) + 1.2))
    y = np.arange(len(ranked))[::-1]
    ims = [a["im"] for a in ranked]
    ax.barh(y, ims, color=COLOURS["bar"])
    for yi, account in zip(y, ranked):
        ax.text(account["im"], yi, f"  {account['worst_scenario_label']}", va="center", fontsize=8)
    ax.set_yticks(y, [a["account"] for a in ranked], fontsize=8)
    ax.set_xlim(0, max(ims) * 1.3)
    compact_axis(ax.xaxis)
    ax.set_xlabel(f"initial margin ({ccy}); text: the account's worst scenario")
    ax.set_ylabel("account")
    top = ranked[0]
    label, times = Counter(a["worst_scenario_label"] for a in ranked).most_common(1)[0]
    caption = (f"The largest {len(ranked)} accounts hold {percent(sum(ims) / total)} of total IM; "
               f"{top['account']} alone {percent(top['im'] / total)}. Their most common worst scenario "
               f"is \u201c{label}\u201d ({times} of {len(ranked)}).")
    return Section(f"The {len(ranked)} largest accounts by IM", figure_uri(fig), caption)


def scenario_profile(day):
    """c. P&L per scenario of the largest account, its worst scenario highlighted."""
    ccy, largest = day["currency"], day["largest_account"]
    pnl, worst = largest["pnl"], largest["worst_scenario"] - 1
    ids = np.arange(1, len(pnl) + 1)
    colours = [COLOURS["gain"] if v >= 0 else COLOURS["loss"] for v in pnl]
    colours[worst] = COLOURS["worst"]
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.2))
    ax.bar(ids, pnl, color=colours)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.annotate(f"worst: {compact(pnl[worst])}", (ids[worst], pnl[worst]), ha="center",
                va="top" if pnl[worst] < 0 else "bottom", fontsize=8, color=COLOURS["worst"])
    model = largest.get("model", day["model"])
    if len(ids) <= 40:  # few scenarios (span16's 16): each labelled
        ax.set_xticks(ids, [f"{i} {label}" for i, label in zip(ids, largest["labels"])],
                      rotation=40, ha="right", fontsize=8)
        ax.set_xlabel(f"{model} scenario (id and label)")
    else:  # hundreds of historical days or paths: ids on the axis, the worst one named
        ax.set_xlabel(f"{model} scenario id (1 to {len(ids)}; labels in day.json)")
    ax.set_ylabel(f"P&L ({ccy}, gains positive)")
    compact_axis(ax.yaxis)
    ax.margins(y=0.12)
    gains = sum(1 for v in pnl if v > 0)
    outcome = f"a loss of {compact(-pnl[worst])}" if pnl[worst] < 0 else f"a P&L of {compact(pnl[worst])}"
    caption = (f"{largest['account']}'s worst scenario is #{worst + 1} \u201c{largest['labels'][worst]}\u201d, "
               f"{outcome} {ccy}; it gains in {gains} of {len(pnl)} scenarios.")
    return Section(f"Scenario P&L of the largest account, {largest['account']}", figure_uri(fig), caption)


def coverage_caption(day):
    """The sentence under the coverage plot."""
    ccy, accounts = day["currency"], day["accounts"]
    under = sum(1 for a in accounts if a["collateral_value"] < a["im"])
    called = [a for a in accounts if a["call"] > 0]
    sentence = f"{under} of {len(accounts)} accounts hold less collateral than their IM (below the line)"
    if called:
        biggest = max(called, key=lambda a: a["call"])
        sentence += (f"; {len(called)} were called for {compact(sum(a['call'] for a in called))} {ccy} in total, "
                     f"the largest call {biggest['account']} ({compact(biggest['call'])} {ccy}).")
    else:
        sentence += "; no account was called."
    empty = sum(1 for a in accounts if a["collateral_value"] <= 0)
    if empty:
        sentence += f" Drawn on the bottom edge: {plural(empty, 'account')} without collateral."
    return sentence


def collateral_coverage(day):
    """d. Collateral value against IM per account, log-log, with the y = x line."""
    ccy = day["currency"]
    accounts = [a for a in day["accounts"] if a["im"] > 0]
    if not accounts:
        return Section("Collateral coverage", None, "No account needs initial margin today.")
    positive = [v for a in accounts for v in (a["im"], a["collateral_value"]) if v > 0]
    floor = min(positive) / 2  # where an account without collateral is drawn
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 5.2))
    for is_called, name in ((False, "not called"), (True, "called (call > 0)")):
        group = [a for a in accounts if (a["call"] > 0) == is_called]
        ax.scatter([a["im"] for a in group], [max(a["collateral_value"], floor) for a in group],
                   color=COLOURS["called" if is_called else "ok"], label=name, s=28, zorder=3)
    for a in sorted(accounts, key=lambda a: a["call"], reverse=True)[:12]:
        if a["call"] > 0:
            ax.annotate(a["account"], (a["im"], max(a["collateral_value"], floor)), fontsize=7,
                        xytext=(4, -9), textcoords="offset points")
    edge = [floor, max(positive) * 1.5]
    ax.plot(edge, edge, color="black", linewidth=0.8, label="collateral = IM")
    ax.set_xscale("log")
    ax.set_yscale("log")
    compact_axis(ax.xaxis, log=True)
    compact_axis(ax.yaxis, log=True)
    ax.set_xlabel(f"initial margin ({ccy}, log scale)")
    ax.set_ylabel(f"collateral value ({ccy}, log scale)")
    ax.legend(loc="upper left")
    return Section("Collateral coverage", figure_uri(fig), coverage_caption(day))


def netting_efficiency(day):
    """e. Gross deliveries against net pay-ins, one panel per asset in its own unit."""
    rows = day["netting"]
    if not rows:
        return Section("Netting efficiency per asset", None, "Nothing was delivered today.")
    fig, axes = plt.subplots(1, len(rows), figsize=(FIG_WIDTH, 3.4), squeeze=False)
    for ax, row in zip(axes[0], rows):
        bars = ax.bar(["gross\ndeliveries", "net\npay-ins"], [row["gross"], row["net"]],
                      color=[COLOURS["bar"], COLOURS["net"]])
        ax.bar_label(bars, [compact(row["gross"]), compact(row["net"])], fontsize=8)
        ax.set_title(f"{row['asset']}: {percent(row['efficiency'])} netted", fontsize=10)
        ax.set_ylabel(f"amount ({row['asset']})")
        compact_axis(ax.yaxis)
        ax.margins(y=0.15)
    fig.tight_layout()
    best = max(rows, key=lambda r: r["efficiency"])
    worst = min(rows, key=lambda r: r["efficiency"])
    caption = (f"Across {len(rows)} assets netting cut gross deliveries by {percent(worst['efficiency'])} to "
               f"{percent(best['efficiency'])}: {best['asset']} most, {worst['asset']} least.")
    return Section("Netting efficiency per asset", figure_uri(fig), caption)


def cycle_outcome(cycle):
    """'defaulted' when an instruction defaulted, else 'rolled' when one rolled, else 'final'."""
    if cycle["defaulted"] > 0:
        return "defaulted"
    return "rolled" if cycle["rolled"] > 0 else "final"


def timeline_caption(cycles):
    """The sentence under the settlement timeline."""
    outcomes = Counter(cycle_outcome(c) for c in cycles)
    start = min(c["opened_s"] for c in cycles)
    end = max(c["closed_s"] for c in cycles)
    defaulted = sum(c["defaulted"] for c in cycles)
    rolled = sum(c["rolled"] for c in cycles)
    return (f"{plural(len(cycles), 'settlement cycle')} ran between {start:.1f} s and {end:.1f} s: "
            f"{outcomes['final']} settled every instruction, {outcomes['defaulted']} had defaults and "
            f"{outcomes['rolled']} rolled instructions over; in all {plural(defaulted, 'instruction')} "
            f"defaulted and {rolled} rolled.")


def settlement_timeline(day):
    """f. One bar per settlement cycle from opened to closed, coloured by outcome."""
    cycles = day["cycles"]
    if not cycles:
        return Section("Settlement timeline", None, "No settlement cycle ran today.")
    names = {"final": "all final", "defaulted": "some defaulted", "rolled": "rolled"}
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.55 * len(cycles) + 1.3))
    y = np.arange(len(cycles))[::-1]
    for yi, c in zip(y, cycles):
        ax.barh(yi, c["closed_s"] - c["opened_s"], left=c["opened_s"], height=0.6,
                color=COLOURS[cycle_outcome(c)])
        ax.text(c["closed_s"], yi, f"  {c['instructions']} instr.: {c['final']} final, "
                f"{c['defaulted']} defaulted, {c['rolled']} rolled", va="center", fontsize=8)
    ax.set_yticks(y, [c["cycle_id"] for c in cycles], fontsize=8)
    end = max(c["closed_s"] for c in cycles)
    ax.set_xlim(0, max(end, 1.0) * 1.45)
    ax.set_xlabel("time since the day's start (s; the ledger records times to the second)")
    ax.set_ylabel("settlement cycle")
    ax.legend(handles=[Patch(color=COLOURS[k], label=v) for k, v in names.items()], loc="lower right",
              bbox_to_anchor=(1, 1), ncol=3, fontsize=8, frameon=False)
    return Section("Settlement timeline", figure_uri(fig), timeline_caption(cycles))


def layer_totals(steps):
    """[(layer, available, absorbed)] in waterfall order; a pro-rata layer's member steps summed."""
    totals = {}
    for step in steps:
        available, absorbed = totals.get(step["layer"], (0.0, 0.0))
        totals[step["layer"]] = (available + step["available"], absorbed + step["absorbed"])
    return [(layer, available, absorbed) for layer, (available, absorbed) in totals.items()]


def waterfall_caption(default, layers, ccy):
    """The sentence under the waterfall."""
    loss = default["loss"]
    if loss <= 0:
        return f"{default['member']} defaulted with no close-out loss."
    if default["uncovered"] > 0:
        outcome = f"{compact(default['uncovered'])} {ccy} was left uncovered"
    else:
        outcome = "it was covered in full"
    shares = ", ".join(f"{pretty_layer(layer)} {percent(absorbed / loss)}"
                       for layer, _, absorbed in layers if absorbed > 0 and layer != "uncovered")
    return (f"{default['member']}'s close-out loss was {compact(loss)} {ccy} and {outcome}; "
            f"shares of the loss: {shares or 'none absorbed'}.")


def default_waterfall(day):
    """g. The loss, then each layer's absorbed amount hanging from what was still uncovered."""
    title, default, ccy = "Default waterfall", day["default"], day["currency"]
    if default is None:
        return Section(title, None, "No member defaulted today.")
    layers = layer_totals(default["steps"])
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.2))
    ax.bar(0, default["loss"], color=COLOURS["loss_total"])
    ax.text(0, default["loss"], compact(default["loss"]), ha="center", va="bottom", fontsize=8)
    remaining = default["loss"]
    for x, (layer, available, absorbed) in enumerate(layers, start=1):
        colour = COLOURS["worst"] if layer == "uncovered" else COLOURS["bar"]
        ax.bar(x, absorbed, bottom=remaining - absorbed, color=colour)
        note = compact(absorbed) if layer == "uncovered" else f"{compact(absorbed)}\nof {compact(available)}"
        ax.text(x, remaining, note, ha="center", va="bottom", fontsize=8)
        remaining -= absorbed
    ax.set_xticks(range(len(layers) + 1), ["close-out loss"] + [pretty_layer(name) for name, _, _ in layers],
                  fontsize=8)
    ax.set_xlabel(f"waterfall layer, in order (default {default['default_id']} of {default['member']})")
    ax.set_ylabel(f"amount ({ccy})")
    compact_axis(ax.yaxis)
    ax.margins(y=0.15)
    return Section(title, figure_uri(fig), waterfall_caption(default, layers, ccy))


# ---- the page -----------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1060px;
       padding: 16px 24px 48px; color: #222; }
h1 { font-size: 1.5em; margin: 0.2em 0; }
h2 { font-size: 1.15em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: 0 0 0.8em; }
.tables { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }
table { border-collapse: collapse; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 0 10px 2px; }
td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; }
p.caption { margin: 0.3em 0 0; }
code { font-size: 0.85em; word-break: break-all; }
"""

# First thing in <head>: counts script and resource errors (capture phase sees failed images).
ERROR_COUNTER = """<script>
window.reportErrors = 0;
window.addEventListener("error", function () { window.reportErrors += 1; }, true);
</script>"""

# Last thing in <body>: after load, records on <body> what scripts/check-report.sh checks.
LOAD_PROBE = """<script>
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) loaded += 1;
  }
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded));
  document.body.setAttribute("data-errors", String(window.reportErrors));
});
</script>"""


def esc(text):
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def summary_table(day):
    """The summary rows, printed as they are."""
    rows = "".join(f"<tr><th>{esc(label)}</th><td>{esc(text)}</td></tr>" for label, text in day["summary"])
    return f"<table><caption>Summary</caption>{rows}</table>"


def methodology_table(day):
    """Total IM under each methodology, when day.json has them."""
    models = day.get("im_by_methodology", [])
    if not models:
        return ""
    rows = "".join(f"<tr><td>{esc(m['model'])}</td><td class=num>{m['total_im']:,.2f}</td></tr>" for m in models)
    return (f"<table><caption>Total IM by methodology</caption><tr><th>model</th>"
            f"<th>total IM ({esc(day['currency'])})</th></tr>{rows}</table>")


def ledger_line(day):
    """The ledger's size, root and proof check, when day.json has them."""
    ledger = day.get("ledger")
    if ledger is None:
        return ""
    verdict = "verified" if ledger["verified"] else "<strong>did NOT verify</strong>"
    return (f"<p class=meta>Ledger: {ledger['entries']:,} entries, root <code>{esc(ledger['root'])}</code>; "
            f"the inclusion proof of entry {ledger['proof_entry']} {verdict}.</p>")


def header(day):
    """Title, run facts, summary tables and ledger line."""
    started = datetime.fromtimestamp(day["started_at"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    device = f" on {esc(day['device'])}" if "device" in day else ""
    return (f"<h1>marginet clearing day {esc(day['day'])}</h1>"
            f"<p class=meta>Margin model {esc(day['model'])}{device}; amounts in {esc(day['currency'])}; "
            f"the day started at {started} UTC, times below are seconds since then.</p>"
            f"<div class=tables>{summary_table(day)}{methodology_table(day)}</div>{ledger_line(day)}")


def section_html(letter, section):
    """<h2>, the plot, and its sentence."""
    image = f'<img src="{section.image}" alt="{esc(section.title)}">' if section.image else ""
    return (f"<section><h2>{letter}. {esc(section.title)}</h2>{image}"
            f"<p class=caption>{esc(section.caption)}</p></section>")


def render_page(day):
    """The whole report as one HTML string."""
    makers = (im_distribution, largest_accounts, scenario_profile, collateral_coverage,
              netting_efficiency, settlement_timeline, default_waterfall)
    sections = "".join(section_html(chr(ord("a") + i), make(day)) for i, make in enumerate(makers))
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>{ERROR_COUNTER}"
            f"<meta name=viewport content=\"width=device-width, initial-scale=1\">"
            f"<title>marginet day {esc(day['day'])}</title><style>{STYLE}</style></head>"
            f"<body>{header(day)}{sections}{LOAD_PROBE}</body></html>\n")


def main(argv):
    if len(argv) != 2:
        print("usage: make_report.py DAY_DIR   (reads DAY_DIR/day.json, writes DAY_DIR/report.html)",
              file=sys.stderr)
        return 2
    day_dir = Path(argv[1])
    day_path = day_dir / "day.json"
    try:
        day = load_day(day_path)
    except DayError as e:
        print(f"make_report: {day_path}: {e}", file=sys.stderr)
        return 2
    if plt is None:
        print("make_report: python3-matplotlib is needed (apt-get install python3-matplotlib)", file=sys.stderr)
        return 2
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    out = day_dir / "report.html"
    out.write_text(render_page(day), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
