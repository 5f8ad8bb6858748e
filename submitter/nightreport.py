"""The night report: one self-contained HTML page (and the same data as JSON) that says how a run
went, written to ``OUTPUT_URL/reports/{run}/index.html`` and ``report.json`` through the stores.

Everything comes from the database the tasks already write: the task rows (``task_runs``: outcome,
duration, rows, counts), the rejected and excluded records (``rejects``), the feed publications
(``feed_publications``). The page needs nothing from the network: inline CSS, an inline SVG chart
drawn here, and a small inline sort script that the page does without (a Content-Security-Policy
lets only that script run). Shop data is hostile: every value goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import statistics
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from worker.common.errors import ConfigError
from worker.common.settings import TASKS
from worker.common.stores import Store

REPORT_PREFIX = "reports"
TOP_REASONS = 10
EXAMPLES = 3
CHART_SHOPS = 40
# A feed whose rows fell by this share of the shop's publish gate is flagged "near the gate".
NEAR_GATE = 0.75
FAILED_STATES = ("failed", "lost", "interrupted")
TASK_COLOURS = {"collect": "#3b6ea5", "feed": "#4a9a5b", "images": "#c08a2d"}


@dataclass(frozen=True)
class LogPlaces:
    """Where the workers' logs are: the local executor's folder, or CloudWatch Logs."""

    log_dir: Path | None = None  # the local executor's --log-dir (its run folder is under it)
    region: str | None = None
    log_group: str | None = None  # the job definition's awslogs-group


@dataclass(frozen=True)
class WrittenReport:
    run_id: str
    html_url: str
    json_url: str
    report: dict[str, Any]


# ---- reading the night ----------------------------------------------------------------------


def latest_run_id(conn: psycopg.Connection) -> str:
    """The most recent run, or a ConfigError saying there is none yet."""
    row = conn.execute("SELECT id FROM runs ORDER BY created_at DESC, id DESC LIMIT 1").fetchone()
    if row is None:
        raise ConfigError("no run yet: plan or run a night first (catalog-submit local / submit)")
    return str(row[0])


_LATEST = """
    WITH latest AS (
        SELECT DISTINCT ON (shop_id, task) shop_id, task, status, exit_code, error, attempt,
               job_id, duration_s, rows_in, rows_out, rows_rejected, bytes, counts, started_at,
               finished_at
        FROM task_runs WHERE run_id = %(run)s
        ORDER BY shop_id, task, started_at DESC, id DESC
    )
"""


def cloudwatch_logs_url(region: str, log_group: str, job_id: str) -> str:
    """The CloudWatch Logs console searching the job log group for one Batch job's lines.

    Every worker line carries ``job_id`` (the array child's ``uuid:index``), so a search for the
    quoted id finds exactly that attempt's lines without knowing its log stream. The console's
    fragment is URL-encoded twice with ``%`` written as ``$``.
    """

    def console(text: str) -> str:
        return urllib.parse.quote(urllib.parse.quote(text, safe=""), safe="").replace("%", "$")

    fragment = (
        f"logsV2:log-groups/log-group/{console(log_group)}/log-events"
        + urllib.parse.quote("?filterPattern=", safe="").replace("%", "$")
        + console(f'"{job_id}"')
    )
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#"
            + fragment)


def _log_link(places: LogPlaces, run_id: str, task: str, index: int, attempt: int | None,
              job_id: str | None) -> dict[str, str] | None:
    if places.log_dir is not None and attempt:
        path = places.log_dir / run_id / f"{task}-{index:05d}-attempt{attempt}.log"
        if path.exists():
            return {"kind": "file", "href": path.resolve().as_uri(), "text": str(path)}
    if places.region and places.log_group and job_id:
        return {"kind": "cloudwatch", "href": cloudwatch_logs_url(places.region, places.log_group,
                                                                  job_id),
                "text": f"CloudWatch Logs: {job_id}"}
    return None


def _count(value: Any) -> int:
    """A count from a task's counts: a number, or a mapping of reasons to numbers."""
    if isinstance(value, Mapping):
        return sum(_count(v) for v in value.values())
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _shop_outcome(tasks: Mapping[str, Any]) -> str:
    states = [tasks.get(t, {}).get("status") for t in TASKS]
    if any(s in FAILED_STATES for s in states):
        return "failed"
    if any(s == "running" for s in states):
        return "running"
    if all(s == "succeeded" for s in states):
        note = (tasks["collect"].get("note") or "")
        return "unchanged" if note == "unchanged source" else "ok"
    return "waiting"


def _shops(conn: psycopg.Connection, run_id: str, places: LogPlaces) -> list[dict[str, Any]]:
    """One entry per frozen shop (index order), with each task's latest attempt."""
    shops: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    query = _LATEST + """
        SELECT rs.idx, rs.shop_id, s.name, s.options->>'max_feed_drop_share', l.task, l.status,
               l.exit_code, l.error, l.attempt, l.job_id, l.duration_s, l.rows_in, l.rows_out,
               l.rows_rejected, l.bytes, l.counts
        FROM run_shops rs
        LEFT JOIN shops s ON s.id = rs.shop_id
        LEFT JOIN latest l ON l.shop_id = rs.shop_id
        WHERE rs.run_id = %(run)s
        ORDER BY rs.idx, l.task
    """
    with conn.cursor() as cur:
        cur.execute(query, {"run": run_id})
        for (idx, shop_id, name, gate, task, status, exit_code, error, attempt, job_id, duration,
             rows_in, rows_out, rejected, nbytes, counts) in cur:
            if current is None or current["index"] != idx:
                current = {"index": idx, "shop_id": shop_id, "name": name or shop_id,
                           "max_feed_drop_share": float(gate) if gate else 0.30,
                           "tasks": {}, "channels": {}}
                shops.append(current)
            if task is None:
                continue
            counts = counts or {}
            current["tasks"][task] = {
                "status": status, "exit_code": exit_code, "error": error, "attempt": attempt,
                "job_id": job_id, "duration_s": round(duration or 0.0, 3),
                "rows_in": rows_in or 0, "rows_out": rows_out or 0,
                "rows_rejected": rejected or 0, "bytes": nbytes or 0,
                "note": counts.get("note"),
                "counts": {k: v for k, v in counts.items() if k not in ("note", "channels")},
                "log": (_log_link(places, run_id, task, idx, attempt, job_id)
                        if status in FAILED_STATES else None),
            }
            if task == "feed":
                for channel, c in (counts.get("channels") or {}).items():
                    current["channels"][channel] = {
                        "published": _count(c.get("rows")),
                        "excluded": _count(c.get("excluded")),
                        "rejected": _count(c.get("rejected")),  # the feed's: reason → count
                        "bytes": _count(c.get("bytes")),
                    }
    for shop in shops:
        shop["outcome"] = _shop_outcome(shop["tasks"])
        shop["duration_s"] = round(sum(t["duration_s"] for t in shop["tasks"].values()), 3)
    return shops


def _changes(conn: psycopg.Connection, run_id: str, created_at: dt.datetime,
             shops: list[dict[str, Any]]) -> None:
    """Per shop: what collect added/removed/changed, and each feed's rows and bytes against the
    shop's publication before this run, with a flag when the drop nears the publish gate."""
    ids = [s["shop_id"] for s in shops]
    current: dict[tuple[str, str], tuple[int, int]] = {}
    previous: dict[tuple[str, str], tuple[int, int]] = {}
    for shop_id, channel, rows, nbytes in conn.execute(
        """SELECT DISTINCT ON (shop_id, channel) shop_id, channel, rows, bytes
           FROM feed_publications WHERE run_id = %s
           ORDER BY shop_id, channel, published_at DESC""", (run_id,)):
        current[(shop_id, channel)] = (int(rows), int(nbytes))
    for shop_id, channel, rows, nbytes in conn.execute(
        """SELECT DISTINCT ON (shop_id, channel) shop_id, channel, rows, bytes
           FROM feed_publications
           WHERE shop_id = ANY(%s) AND run_id IS DISTINCT FROM %s AND published_at < %s
           ORDER BY shop_id, channel, published_at DESC""", (ids, run_id, created_at)):
        previous[(shop_id, channel)] = (int(rows), int(nbytes))
    for shop in shops:
        collect = shop["tasks"].get("collect", {}).get("counts", {})
        feeds = {}
        flags = []
        for (shop_id, channel), (rows, nbytes) in sorted(current.items()):
            if shop_id != shop["shop_id"]:
                continue
            before = previous.get((shop_id, channel))
            entry: dict[str, Any] = {"rows": rows, "bytes": nbytes,
                                     "rows_before": before[0] if before else None,
                                     "bytes_before": before[1] if before else None}
            if before and before[0] > 0:
                drop = (before[0] - rows) / before[0]
                entry["drop_share"] = round(drop, 4)
                if drop >= NEAR_GATE * shop["max_feed_drop_share"]:
                    flags.append(f"{channel}: {drop:.0%} fewer rows (gate "
                                 f"{shop['max_feed_drop_share']:.0%})")
            feeds[channel] = entry
        error = shop["tasks"].get("feed", {}).get("error") or ""
        if "max_feed_drop_share" in error:
            flags.append("feed refused by the publish gate")
        if "max_shrink_share" in (shop["tasks"].get("collect", {}).get("error") or ""):
            flags.append("collect refused: the catalog shrank past max_shrink_share")
        shop["changes"] = {
            "added": int(collect.get("inserted", 0)) + int(collect.get("returned", 0)),
            "removed": int(collect.get("gone", 0)),
            "changed": int(collect.get("updated", 0)),
            "unchanged": int(collect.get("unchanged", 0)),
            "feeds": feeds,
            "flags": flags,
        }


def _reasons(conn: psycopg.Connection, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Per channel (collect's and images' refusals under their task's name): the top reasons, with
    counts and the first three items of each."""
    out: dict[str, list[dict[str, Any]]] = {}
    rows = conn.execute(
        """
        WITH r AS (
            SELECT r.id, coalesce(r.channel, r.task) AS channel, r.reason, r.shop_id,
                   r.product_id, r.field, r.position, r.excerpt
            FROM rejects r JOIN task_runs t ON t.id = r.task_run_id
            WHERE t.run_id = %(run)s
        ), g AS (
            SELECT channel, reason, count(*) AS n,
                   row_number() OVER (PARTITION BY channel ORDER BY count(*) DESC, reason) AS rk
            FROM r GROUP BY channel, reason
        )
        SELECT g.channel, g.reason, g.n,
               (SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'shop_id', e.shop_id, 'product_id', e.product_id, 'field', e.field,
                           'position', e.position, 'excerpt', left(e.excerpt, 200))), '[]')
                FROM (SELECT * FROM r WHERE r.channel = g.channel AND r.reason = g.reason
                      ORDER BY r.id LIMIT %(examples)s) e)
        FROM g WHERE g.rk <= %(top)s
        ORDER BY g.channel, g.n DESC, g.reason
        """,
        {"run": run_id, "examples": EXAMPLES, "top": TOP_REASONS},
    )
    for channel, reason, n, examples in rows:
        out.setdefault(channel, []).append({"reason": reason, "count": int(n),
                                            "examples": examples})
    return out


def _rejects_history(conn: psycopg.Connection, run_id: str, kind: str,
                     created_at: dt.datetime) -> tuple[int, list[int]]:
    """Tonight's rejected rows, and those of the seven runs of the same kind before it."""
    totals = conn.execute(
        """
        WITH prior AS (
            SELECT id FROM runs WHERE (kind = %(kind)s AND created_at < %(at)s) OR id = %(run)s
            ORDER BY created_at DESC LIMIT 8
        ), latest AS (
            SELECT DISTINCT ON (run_id, shop_id, task) run_id, rows_rejected
            FROM task_runs WHERE run_id IN (SELECT id FROM prior)
            ORDER BY run_id, shop_id, task, started_at DESC, id DESC
        )
        SELECT p.id, coalesce(sum(l.rows_rejected), 0)
        FROM prior p LEFT JOIN latest l ON l.run_id = p.id GROUP BY p.id
        """,
        {"kind": kind, "at": created_at, "run": run_id},
    ).fetchall()
    tonight = next((int(n) for rid, n in totals if rid == run_id), 0)
    return tonight, [int(n) for rid, n in totals if rid != run_id]


def build_report(conn: psycopg.Connection, run_id: str | None = None, *,
                 places: LogPlaces = LogPlaces()) -> dict[str, Any]:
    """The report's data (what report.json holds and the page shows)."""
    run_id = run_id or latest_run_id(conn)
    row = conn.execute(
        "SELECT id, run_date, kind, created_at, shop_count FROM runs WHERE id = %s", (run_id,)
    ).fetchone()
    if row is None:
        raise ConfigError(f"run {run_id!r} does not exist (catalog-submit status lists runs' "
                          "states; the latest is the default)")
    _, run_date, kind, created_at, shop_count = row
    shops = _shops(conn, run_id, places)
    _changes(conn, run_id, created_at, shops)
    reasons = _reasons(conn, run_id)
    tonight, before = _rejects_history(conn, run_id, kind, created_at)
    span = conn.execute(
        "SELECT min(started_at), max(finished_at) FROM task_runs WHERE run_id = %s", (run_id,)
    ).fetchone()
    if not conn.autocommit:
        conn.commit()
    channels: dict[str, dict[str, int]] = {}
    for shop in shops:
        for name, c in shop["channels"].items():
            total = channels.setdefault(name, {"published": 0, "excluded": 0, "rejected": 0})
            for key in total:
                total[key] += c[key]
    outcomes = {o: sum(1 for s in shops if s["outcome"] == o)
                for o in ("ok", "unchanged", "failed", "running", "waiting")}
    started, finished = (span or (None, None))
    images = [s["tasks"].get("images", {}) for s in shops]
    return {
        "run": {"id": run_id, "date": run_date.isoformat(), "kind": kind,
                "created_at": created_at.isoformat(), "shops": shop_count},
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "glance": {
            "shops": shop_count,
            **outcomes,
            "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None,
            "duration_s": round((finished - started).total_seconds(), 1)
            if started and finished else None,
            "rows_in": sum(s["tasks"].get("collect", {}).get("rows_in", 0) for s in shops),
            "rows_loaded": sum(s["tasks"].get("collect", {}).get("rows_out", 0) for s in shops),
            "rows_rejected": tonight,
            "rows_rejected_median7": statistics.median(before) if before else None,
            "nights_before": len(before),
            "channels": channels,
            "images_processed": sum(i.get("rows_out", 0) for i in images),
            "images_failed": sum(i.get("rows_rejected", 0) for i in images),
        },
        "shops": shops,
        "reasons": reasons,
    }


# ---- the page ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(n: float | int | None) -> str:
    if n is None:
        return "–"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}"
    return f"{int(n):,}"


def _seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _bytes(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{n} B"


_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans KR",sans-serif;margin:0;
 color:#1d2430;background:#f5f6f8}
main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6575;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 14px;min-width:130px;
 flex:1 1 130px}
.card b{display:block;font-size:22px}.card span{color:#5b6575;font-size:12px}
.card.bad b{color:#b3261e}.card.good b{color:#2e7d32}
.scroll{overflow-x:auto;background:#fff;border:1px solid #dde1e7;border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid #eceff3;text-align:left;vertical-align:top}
td:nth-child(2){white-space:nowrap}
#shops td:last-child{min-width:280px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#eef1f5;position:sticky;top:0;white-space:nowrap}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.st{display:inline-block;border-radius:4px;padding:0 5px;font-size:12px;white-space:nowrap}
.st-succeeded,.st-ok{background:#e3f3e5;color:#1b5e20}.st-unchanged{background:#e8eef7;color:#2b4c7e}
.st-failed,.st-lost,.st-interrupted{background:#fde7e6;color:#9b1c1c}
.st-running{background:#fff4d6;color:#7a5300}.st-waiting,.st-not-run{background:#eceff3;color:#5b6575}
.err{background:#fff;border:1px solid #f1c6c3;border-left:4px solid #b3261e;border-radius:6px;
 padding:8px 12px;margin:8px 0;overflow-wrap:anywhere}
.err pre{white-space:pre-wrap;margin:6px 0;font-size:12px}
.flag{color:#9b1c1c;font-weight:600}
.reasons{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:10px}
.reasons section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:8px 12px}
.reasons h3{margin:2px 0 6px;font-size:15px}
.ex{color:#5b6575;font-size:12px;overflow-wrap:anywhere}
svg{max-width:100%;height:auto;background:#fff;border:1px solid #dde1e7;border-radius:8px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
footer{color:#5b6575;font-size:12px;margin:24px 0}
@media (max-width:600px){main{padding:8px}.card b{font-size:18px}th,td{padding:5px}}
"""

# Sorting: a click on a heading sorts by it (again: the other way). The fragment #sort=KEY or
# #sort=KEY-desc clicks it on load, for links that share a sorted view. Without JavaScript the
# table stays in the run's index order and every other part of the page is the same.
_SCRIPT = """(function(){
var t=document.getElementById('shops');if(!t)return;
var b=t.tBodies[0],hs=t.tHead.rows[0].cells,btns=[];
function val(c,num){var v=c.getAttribute('data-v');if(v===null)v=c.textContent;
 return num?(parseFloat(v)||0):v.toLowerCase();}
function sortBy(i,desc){var num=hs[i].getAttribute('data-type')==='num';
 var rows=Array.prototype.slice.call(b.rows);
 rows.sort(function(x,y){var a=val(x.cells[i],num),c=val(y.cells[i],num);
  return (a<c?-1:a>c?1:(+x.getAttribute('data-i'))-(+y.getAttribute('data-i')))*(desc?-1:1);});
 for(var r=0;r<rows.length;r++)b.appendChild(rows[r]);
 for(var j=0;j<hs.length;j++)hs[j].removeAttribute('aria-sort');
 hs[i].setAttribute('aria-sort',desc?'descending':'ascending');}
for(var i=0;i<hs.length;i++)(function(i){var bt=document.createElement('button');bt.type='button';
 bt.textContent=hs[i].textContent;hs[i].textContent='';hs[i].appendChild(bt);btns.push(bt);
 bt.addEventListener('click',function(){sortBy(i,hs[i].getAttribute('aria-sort')==='ascending'||
  (hs[i].getAttribute('aria-sort')===null&&hs[i].getAttribute('data-type')==='num'));});})(i);
var m=/sort=([a-z0-9_]+)(-desc|-asc)?/.exec(location.hash);
if(m)for(var k=0;k<hs.length;k++)if(hs[k].getAttribute('data-key')===m[1]){
 btns[k].click();var d=hs[k].getAttribute('aria-sort')==='descending';
 if((m[2]==='-desc')!==d)btns[k].click();}
document.body.setAttribute('data-sorted',t.querySelector('th[aria-sort]')?'yes':'no');
})();"""


def _status(state: str | None) -> str:
    text = state or "not run"
    return f'<span class="st st-{_e(text.replace(" ", "-"))}">{_e(text)}</span>'


def _chart(shops: list[dict[str, Any]]) -> str:
    """Horizontal bars of each shop's task durations (collect, feed, images stacked), longest
    first, so the long tail shows at a glance."""
    ranked = sorted((s for s in shops if s["duration_s"] > 0), key=lambda s: -s["duration_s"])
    shown = ranked[:CHART_SHOPS]
    if not shown:
        return "<p>No task has finished yet: no durations to draw.</p>"
    label_w, bar_w, row_h, top = 170, 560, 20, 24
    width = label_w + bar_w + 90
    height = top + row_h * len(shown) + 8
    longest = max(s["duration_s"] for s in shown) or 1.0
    parts = [f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" role="img" aria-label="Task durations per shop, longest first">',
             f'<text x="{label_w}" y="15" font-size="11" fill="#5b6575">0</text>',
             f'<text x="{label_w + bar_w}" y="15" font-size="11" fill="#5b6575" '
             f'text-anchor="end">{_e(_seconds(longest))}</text>']
    for n, shop in enumerate(shown):
        y = top + n * row_h
        name = shop["shop_id"] if len(shop["shop_id"]) <= 24 else shop["shop_id"][:23] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" font-size="12" text-anchor="end">'
                     f'{_e(name)}</text>')
        x = float(label_w)
        for task in TASKS:
            seconds = shop["tasks"].get(task, {}).get("duration_s", 0.0)
            if seconds <= 0:
                continue
            w = max(bar_w * seconds / longest, 1.0)
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                         f'fill="{TASK_COLOURS[task]}"><title>{_e(shop["shop_id"])} {task}: '
                         f'{_e(_seconds(seconds))}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 5:.1f}" y="{y + 14}" font-size="11" fill="#5b6575">'
                     f'{_e(_seconds(shop["duration_s"]))}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span style="background:{c}"></span>{t}' for t, c in TASK_COLOURS.items())
    more = (f" The {len(ranked) - len(shown)} shorter shops are left out."
            if len(ranked) > len(shown) else "")
    return f'<p class="legend">{legend}</p>' + "".join(parts) + f"<p class=\"sub\">{more}</p>"


def _glance(report: dict[str, Any]) -> str:
    g = report["glance"]
    cards = [
        ("ok", g["ok"], "shops ok", "good"),
        ("unchanged", g["unchanged"], "skipped: source unchanged", ""),
        ("failed", g["failed"], "shops failed", "bad" if g["failed"] else ""),
        ("duration", _seconds(g["duration_s"]), "wall clock", ""),
        ("rows", _num(g["rows_in"]), f"rows read, {_num(g['rows_loaded'])} loaded", ""),
        ("rejected", _num(g["rows_rejected"]),
         "rows rejected" + (f" (7-night median {_num(g['rows_rejected_median7'])})"
                            if g["rows_rejected_median7"] is not None else ""), ""),
        ("images", _num(g["images_processed"]), "images processed", ""),
    ]
    if g["running"] or g["waiting"]:
        cards.insert(3, ("pending", g["running"] + g["waiting"], "shops not finished", ""))
    for name, c in sorted(g["channels"].items()):
        # "rejected" counts the items the channel's rules excluded (their reasons are below);
        # "excluded" the items its policy leaves out by design (Naver's EP: sold-out items).
        cards.append((f"ch-{name}", _num(c["published"]),
                      f"{name}: items published ({_num(c['rejected'])} excluded by its rules, "
                      f"{_num(c['excluded'])} left out by its policy)", ""))
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}" id="glance-{_e(key)}"><b>{_e(value)}</b>'
        f"<span>{_e(label)}</span></div>"
        for key, value, label, cls in cards
    ) + "</div>"


def _shop_table(report: dict[str, Any]) -> str:
    channels = sorted(report["glance"]["channels"])
    head = [("index", "#", "num"), ("shop", "shop", "text"), ("outcome", "outcome", "text"),
            ("duration", "duration", "num")]
    for task in TASKS:
        head += [(task, task, "text"), (f"{task}_s", f"{task} time", "num")]
    head += [("rows_in", "rows in", "num"), ("rows_out", "rows loaded", "num"),
             ("rejected", "rejected", "num")]
    for ch in channels:
        head += [(f"pub_{ch}", f"{ch} published", "num"),
                 (f"exc_{ch}", f"{ch} not published", "num")]
    head += [("changes", "changes vs previous night", "text")]
    out = ['<div class="scroll"><table id="shops"><thead><tr>']
    for key, label, kind in head:
        cls = ' class="n"' if kind == "num" else ""
        out.append(f'<th data-key="{_e(key)}" data-type="{kind}"{cls}>{_e(label)}</th>')
    out.append("</tr></thead><tbody>")
    for shop in report["shops"]:
        tasks = shop["tasks"]
        collect = tasks.get("collect", {})
        rejected = sum(t.get("rows_rejected", 0) for t in tasks.values())
        cells = [
            (shop["index"], _e(shop["index"]), True),
            (shop["shop_id"], f'<a href="#shop-{_e(shop["shop_id"])}">{_e(shop["shop_id"])}</a>'
             if shop["outcome"] == "failed" else _e(shop["shop_id"]), False),
            (shop["outcome"], _status(shop["outcome"]), False),
            (shop["duration_s"], _e(_seconds(shop["duration_s"])), True),
        ]
        for task in TASKS:
            t = tasks.get(task)
            cells.append((t["status"] if t else "not run", _status(t["status"] if t else None),
                          False))
            cells.append((t["duration_s"] if t else 0, _e(_seconds(t["duration_s"]) if t else "–"),
                          True))
        cells += [(collect.get("rows_in", 0), _num(collect.get("rows_in")), True),
                  (collect.get("rows_out", 0), _num(collect.get("rows_out")), True),
                  (rejected, _num(rejected), True)]
        for ch in channels:
            c = shop["channels"].get(ch)
            cells.append((c["published"] if c else -1, _num(c["published"]) if c else "–", True))
            left = c["excluded"] + c["rejected"] if c else -1
            cells.append((left, _num(left) if c else "–", True))
        ch_ = shop.get("changes", {})
        summary = (f"+{_num(ch_.get('added', 0))} −{_num(ch_.get('removed', 0))} "
                   f"~{_num(ch_.get('changed', 0))}")
        feeds = "; ".join(
            f"{name} {_num(f['rows'])} rows"
            + (f" (was {_num(f['rows_before'])})" if f.get("rows_before") is not None else "")
            + f", {_bytes(f['bytes'])}"
            for name, f in sorted(ch_.get("feeds", {}).items()))
        flags = "".join(f'<div class="flag">⚠ {_e(f)}</div>' for f in ch_.get("flags", []))
        cells.append((summary, f"{_e(summary)}<div class=\"ex\">{_e(feeds)}</div>{flags}", False))
        out.append(f'<tr data-i="{shop["index"]}">')
        for value, text, numeric in cells:
            cls = ' class="n"' if numeric else ""
            out.append(f'<td{cls} data-v="{_e(value)}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _failures(report: dict[str, Any]) -> str:
    failed = [s for s in report["shops"] if s["outcome"] == "failed"]
    if not failed:
        return "<p>No shop failed.</p>"
    out = []
    for shop in failed:
        for task in TASKS:
            t = shop["tasks"].get(task)
            if not t or t["status"] not in FAILED_STATES:
                continue
            link = t.get("log")
            where = (f'<a href="{_e(link["href"])}">{_e(link["text"])}</a>' if link
                     else _e(f"job {t.get('job_id') or '?'}: no log location configured "
                             "(--log-dir or --log-group/--region)"))
            out.append(
                f'<div class="err" id="shop-{_e(shop["shop_id"])}"><b>{_e(shop["shop_id"])}</b> '
                f"({_e(shop['name'])}) — {_e(task)} {_status(t['status'])} exit "
                f"{_e(t['exit_code'])} after {_e(t['attempt'])} attempt(s)"
                f"<pre>{_e(t['error'] or 'no error recorded')}</pre>log: {where}</div>"
            )
    return "".join(out)


def _reasons_html(report: dict[str, Any]) -> str:
    if not report["reasons"]:
        return "<p>No item was rejected or excluded.</p>"
    out = ['<div class="reasons">']
    for channel, reasons in sorted(report["reasons"].items()):
        out.append(f'<section id="reasons-{_e(channel)}"><h3>{_e(channel)}</h3><table>'
                   '<thead><tr><th>reason</th><th class="n">items</th></tr></thead><tbody>')
        for r in reasons:
            examples = "; ".join(
                f"{e.get('shop_id')}/{e.get('product_id') or e.get('position') or '?'}"
                + (f" [{e['field']}]" if e.get("field") else "")
                + (f": {e['excerpt']}" if e.get("excerpt") else "")
                for e in r["examples"])
            out.append(f"<tr><td>{_e(r['reason'])}<div class=\"ex\">e.g. {_e(examples)}</div>"
                       f'</td><td class="n">{_num(r["count"])}</td></tr>')
        out.append("</tbody></table></section>")
    out.append("</div>")
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The page: self-contained, every value escaped, the sort script allowed by its hash only."""
    run = report["run"]
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
           "img-src data:")
    title = f"catalog-batch night report — {run['id']}"
    return "".join([
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>Night report: run {_e(run['id'])}</h1>",
        f'<p class="sub">{_e(run["kind"])} run for {_e(run["date"])}, {_num(run["shops"])} shops, '
        f"planned {_e(run['created_at'][:19].replace('T', ' '))} UTC; report generated "
        f"{_e(report['generated_at'][:19].replace('T', ' '))} UTC.</p>",
        '<h2 id="glance">The night at a glance</h2>', _glance(report),
        '<h2 id="durations">Duration per shop</h2>', _chart(report["shops"]),
        '<h2 id="shops-heading">Shops</h2>',
        '<p class="sub">Click a heading to sort. Changes: +added −removed ~changed products, '
        "then each feed's rows against its previous publication.</p>",
        _shop_table(report),
        '<h2 id="failures">Failed shops</h2>', _failures(report),
        '<h2 id="reasons">Exclusions and rejects by channel</h2>', _reasons_html(report),
        "<footer>report.json beside this page holds the same data.</footer>",
        f"</main><script>{_SCRIPT}</script></body></html>\n",
    ])


# ---- writing it -----------------------------------------------------------------------------


def write_report(conn: psycopg.Connection, store: Store, run_id: str | None = None, *,
                 places: LogPlaces = LogPlaces()) -> WrittenReport:
    """Build the report and publish ``reports/{run}/index.html`` and ``report.json``."""
    report = build_report(conn, run_id, places=places)
    run = report["run"]["id"]
    base = f"{REPORT_PREFIX}/{run}"
    store.put_bytes(f"{base}/report.json",
                    json.dumps(report, ensure_ascii=False, indent=1, default=str).encode(),
                    content_type="application/json")
    store.put_bytes(f"{base}/index.html", render_html(report).encode(),
                    content_type="text/html; charset=utf-8")
    return WrittenReport(run, store.url_for(f"{base}/index.html"),
                         store.url_for(f"{base}/report.json"), report)


def report_address(store: Store, run_id: str) -> str | None:
    """Where the run's report is, when one was written."""
    key = f"{REPORT_PREFIX}/{run_id}/index.html"
    return store.url_for(key) if store.exists(key) else None


def night_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's night totals as an EMF record (what the rejects alarm reads)."""
    from worker.common import metrics

    g = report["glance"]
    return metrics.night_record(
        run_id=report["run"]["id"], rows_rejected=g["rows_rejected"],
        rows_rejected_median7=g["rows_rejected_median7"], shops=g["shops"],
        shops_failed=g["failed"],
    )


def failed_shops(report: Mapping[str, Any]) -> Iterable[str]:
    return (s["shop_id"] for s in report["shops"] if s["outcome"] == "failed")


def report_from_event(event: Mapping[str, Any], context: Any, *, database_url: str,
                      output_url: str | None, endpoint_url: str | None) -> dict[str, Any]:
    """The Lambda's report event (``{"report": "latest" | RUN_ID, "output_url": "s3://…",
    "log_group": "/aws/batch/…"}``, sent by the stack's morning schedule): write the report, print
    the night's EMF record, return where it went."""
    from worker.common import db, metrics
    from worker.common.stores import open_store

    run = event.get("report")
    if not isinstance(run, str) or not run:
        raise ConfigError('report event: "report" must be "latest" or a run id')
    target = event.get("output_url") or output_url
    if not isinstance(target, str) or not target:
        raise ConfigError('report event: no "output_url" in the event and no OUTPUT_URL set')
    log_group = event.get("log_group")
    arn = str(getattr(context, "invoked_function_arn", "") or "")
    region = arn.split(":")[3] if arn.count(":") >= 4 else None
    places = LogPlaces(region=region, log_group=log_group if isinstance(log_group, str) else None)
    store = open_store(target, endpoint_url=endpoint_url)
    with db.connect(database_url) as conn:
        db.check_schema(conn)
        conn.commit()
        written = write_report(conn, store, None if run == "latest" else run, places=places)
    metrics.emit([night_metrics(written.report)])
    g = written.report["glance"]
    return {"report": written.html_url, "json": written.json_url, "run_id": written.run_id,
            "shops_ok": g["ok"] + g["unchanged"], "shops_failed": g["failed"],
            "rows_rejected": g["rows_rejected"]}


def write_local_report(conn: psycopg.Connection, output: Path, run_id: str,
                       log_dir: Path | None) -> str:
    """The demo's report into its output folder; the line that says where it is."""
    from worker.common.stores import open_store

    written = write_report(conn, open_store(str(output)), run_id,
                           places=LogPlaces(log_dir=log_dir))
    return f"night report: {written.html_url}"
