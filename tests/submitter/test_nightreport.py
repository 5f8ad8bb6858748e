"""The night report: its data from a recorded night, the page in a real browser (JavaScript on and
off, sorting, desktop and phone widths), the CLI, the Lambda against moto's S3, and the demo."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws
from PIL import Image, ImageStat

from submitter import cli, lambda_handler
from submitter.config import SubmitterConfig
from submitter.demo import BROKEN_SHOP, run_demo
from submitter.nightreport import LogPlaces, build_report, cloudwatch_logs_url, write_report
from tests.fixtures_browser import Browser, dump_dom, screenshot
from tests.fixtures_logging import restore_logging  # noqa: F401 -- the fixture
from tests.fixtures_night import HOSTILE, TONIGHT, make_night
from worker.common.stores import open_store

# main() and the Lambda handler configure logging onto streams pytest closes after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def night(conn: psycopg.Connection, tmp_path: Path) -> dict:
    return make_night(conn, tmp_path / "logs")


@pytest.fixture
def page(conn: psycopg.Connection, night: dict, tmp_path: Path) -> Path:
    written = write_report(conn, open_store(str(tmp_path / "out")), TONIGHT,
                           places=LogPlaces(log_dir=tmp_path / "logs"))
    return Path(written.html_url)


class _Rows(HTMLParser):
    """The shop table's rows (their data-i) and every element, from a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and a.get("data-i") is not None:
            self.rows.append(int(str(a["data-i"])))


def parse(text: str) -> _Rows:
    p = _Rows()
    p.feed(text)
    return p


def test_the_report_data_of_a_recorded_night(conn: psycopg.Connection, night: dict,
                                             tmp_path: Path) -> None:
    report = build_report(conn, places=LogPlaces(log_dir=tmp_path / "logs"))
    assert report["run"]["id"] == TONIGHT  # the latest run by default
    g = report["glance"]
    assert (g["ok"], g["unchanged"], g["failed"], g["shops"]) == (2, 1, 1, 4)
    assert g["rows_rejected"] == 9 and g["rows_rejected_median7"] == 4 and g["nights_before"] == 1
    assert g["channels"]["google"] == {"published": 165, "excluded": 6, "rejected": 4}
    assert g["images_processed"] == 99 + 70
    shops = {s["shop_id"]: s for s in report["shops"]}
    assert [s["shop_id"] for s in report["shops"]] == ["alpha", "bravo", "charlie", "delta"]
    assert shops["alpha"]["changes"]["added"] == 3 and shops["alpha"]["changes"]["removed"] == 3
    assert shops["alpha"]["changes"]["changed"] == 7
    assert shops["alpha"]["changes"]["feeds"]["google"]["rows_before"] == 100
    assert shops["alpha"]["changes"]["flags"] == []  # 10 % fewer: far from its 30 % gate
    assert shops["bravo"]["changes"]["flags"] == [
        "google: 25% fewer rows (gate 30%)", "meta: 25% fewer rows (gate 30%)"]
    charlie = shops["charlie"]["tasks"]["collect"]
    assert charlie["log"]["kind"] == "file" and charlie["log"]["text"] == str(night["failed_log"])
    assert "feed" not in shops["charlie"]["tasks"]
    google = report["reasons"]["google"]
    assert google[0]["reason"] == "invalid gtin check digit" and google[0]["count"] == 5
    assert len(google[0]["examples"]) == 3 and google[0]["examples"][1]["product_id"] == "p1"
    assert report["reasons"]["meta"][0]["examples"][0]["field"] == "image_link"


def test_failed_batch_jobs_link_to_cloudwatch_logs(conn: psycopg.Connection, night: dict) -> None:
    report = build_report(conn, TONIGHT, places=LogPlaces(region="ap-northeast-2",
                                                          log_group="/aws/batch/catalog"))
    link = next(s for s in report["shops"] if s["shop_id"] == "charlie")["tasks"]["collect"]["log"]
    assert link["kind"] == "cloudwatch"
    assert link["href"] == cloudwatch_logs_url("ap-northeast-2", "/aws/batch/catalog",
                                               f"job-{TONIGHT}-collect:2")
    assert link["href"].startswith(
        "https://ap-northeast-2.console.aws.amazon.com/cloudwatch/home?region=ap-northeast-2#"
        "logsV2:log-groups/log-group/$252Faws$252Fbatch$252Fcatalog/log-events$3FfilterPattern$3D"
        "$2522job-")


def test_the_page_is_self_contained_and_escapes_shop_data(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    tags = parse(text).tags
    # nothing fetched from anywhere: no external script, style, font, image or frame
    assert not [t for t, a in tags if t in ("link", "iframe", "object", "embed", "img")]
    assert not [a for t, a in tags if t == "script" and a.get("src")]
    assert "@import" not in text and "url(" not in text
    assert HOSTILE not in text and "<img src=x" not in text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    assert [t for t, _ in tags].count("script") == 1
    report = json.loads((page.parent / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["id"] == TONIGHT and len(report["shops"]) == 4


def test_in_chromium_with_javascript_a_click_sorts_the_table(page: Path) -> None:
    with Browser(js=True) as browser:
        browser.open(page)
        dom = browser.html()
        assert "<title>catalog-batch night report — 2026-12-01-local1</title>" in dom  # no injection
        assert parse(dom).rows == [0, 1, 2, 3] and 'data-sorted="no"' in dom
        # a number column sorts largest first: alpha 82 s, bravo 31 s, delta 4 s, charlie 3 s
        browser.click('th[data-key="duration"] button')
        dom = browser.html()
        assert parse(dom).rows == [0, 1, 3, 2] and 'aria-sort="descending"' in dom
        browser.click('th[data-key="duration"] button')
        assert parse(browser.html()).rows == [2, 3, 1, 0]
        browser.click('th[data-key="outcome"] button')  # text: a to z
        assert parse(browser.html()).rows == [2, 0, 1, 3]  # failed, ok, ok, unchanged
        # a shared link's fragment sorts on load
        browser.open(page, "sort=shop-desc")
        dom = browser.html()
        assert parse(dom).rows == [3, 2, 1, 0] and 'data-sorted="yes"' in dom
    text = re.sub(r"<[^>]+>", " ", dom)
    for phrase in ("The night at a glance", "shops ok", "shops failed", "invalid gtin check digit",
                   "google: 25% fewer rows (gate 30%)", "missing image_link",
                   "google: items published (4 excluded by its rules, 6 left out by its policy)"):
        assert phrase in text, phrase
    assert 'id="chart"' in dom and dom.count("<rect") == 10  # alpha 3, bravo 3, charlie 1, delta 3


def test_the_one_line_dump_of_headless_chromium_sees_the_sorted_table(page: Path) -> None:
    assert parse(dump_dom(page, fragment="sort=duration-desc")).rows == [0, 1, 3, 2]


def test_in_chromium_without_javascript_everything_is_there_unsorted(page: Path) -> None:
    with Browser(js=False) as browser:
        browser.open(page, "sort=duration-desc")
        dom = browser.html()
    parsed = parse(dom)
    assert parsed.rows == [0, 1, 2, 3]
    assert not [t for t, _ in parsed.tags if t == "button"]  # the script never ran
    assert "data-sorted" not in next(a for t, a in parsed.tags if t == "body")
    assert "invalid gtin check digit" in dom and 'id="chart"' in dom
    assert "collect-00002-attempt2.log" in dom and "shops failed" in dom


@pytest.mark.parametrize(("width", "height"), [(1280, 1400), (390, 1600)])
def test_the_page_renders_at_desktop_and_phone_widths(page: Path, tmp_path: Path, width: int,
                                                      height: int) -> None:
    png = screenshot(page, tmp_path / f"report-{width}.png", width=width, height=height)
    with Image.open(png) as image:
        assert image.size == (width, height)
        rgb = image.convert("RGB")
        stat = ImageStat.Stat(rgb)
        assert max(stat.stddev) > 20  # not a blank page
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50
        # the chart's task colours are drawn (collect's blue is there)
        assert any(abs(c[0] - 0x3B) < 8 and abs(c[1] - 0x6E) < 8 and abs(c[2] - 0xA5) < 8
                   for _, c in colours)


def test_the_cli_writes_the_report_and_status_names_it(
    conn: psycopg.Connection, night: dict, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("OUTPUT_URL", str(tmp_path / "out"))
    monkeypatch.delenv("DATABASE_SECRET_ARN", raising=False)
    assert cli.main(["status", TONIGHT]) == 2
    assert f"report: not written yet (catalog-submit report {TONIGHT})" in capsys.readouterr().out
    assert cli.main(["report", "--log-dir", str(tmp_path / "logs")]) == 0
    out = capsys.readouterr().out
    html_path = tmp_path / "out" / "reports" / TONIGHT / "index.html"
    assert f"report: {html_path}" in out and "1 failed" in out
    assert html_path.exists() and (html_path.parent / "report.json").exists()
    cli.main(["status", TONIGHT])
    assert f"report: {html_path}" in capsys.readouterr().out
    assert cli.main(["report", "no-such-run"]) == 65
    assert "run 'no-such-run' does not exist" in capsys.readouterr().err


class _Context:
    aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:ap-northeast-2:123456789012:function:catalog-submitter"


def test_the_lambda_report_event_writes_to_s3_and_prints_the_night_metrics(
    conn: psycopg.Connection, night: dict, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "ap-northeast-2", "DATABASE_URL": database_url,
                        "LOG_FORMAT": "json"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "DATABASE_SECRET_ARN", "JOB_QUEUE",
                 "OUTPUT_URL"):
        monkeypatch.delenv(name, raising=False)
    lambda_handler.reset()
    with mock_aws():
        s3 = boto3.client("s3", region_name="ap-northeast-2")
        s3.create_bucket(Bucket="feeds", CreateBucketConfiguration={
            "LocationConstraint": "ap-northeast-2"})
        # the event the stack's ReportSchedule sends (no JOB_QUEUE needed for a report)
        result = lambda_handler.handler({"report": "latest", "output_url": "s3://feeds",
                                         "log_group": "/aws/batch/catalog"}, _Context())
        body = s3.get_object(Bucket="feeds", Key=f"reports/{TONIGHT}/index.html")
        page = body["Body"].read().decode()
        assert body["ContentType"].startswith("text/html")
        data = json.loads(s3.get_object(Bucket="feeds", Key=f"reports/{TONIGHT}/report.json")
                          ["Body"].read())
    lambda_handler.reset()
    assert result["report"] == f"s3://feeds/reports/{TONIGHT}/index.html"
    assert result["shops_failed"] == 1 and data["glance"]["failed"] == 1
    link = cloudwatch_logs_url("ap-northeast-2", "/aws/batch/catalog", f"job-{TONIGHT}-collect:2")
    assert link.replace("&", "&amp;") in page
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith('{"_aws"')]
    assert [(r["NightRowsRejected"], r["NightRowsRejectedMedian7"], r["scope"]) for r in lines] == [
        (9, 4, "night")]


def test_the_demo_writes_the_report_of_its_night(database_url: str, tmp_path: Path) -> None:
    out = io.StringIO()
    home = tmp_path / "home"
    code = run_demo(SubmitterConfig(database_url=database_url), home=home, parallel=2, out=out)
    assert code == 0, out.getvalue()
    match = re.search(r"night report: (\S+index\.html)", out.getvalue())
    assert match, out.getvalue()
    page = Path(match.group(1))
    data = json.loads((page.parent / "report.json").read_text(encoding="utf-8"))
    broken = next(s for s in data["shops"] if s["shop_id"] == BROKEN_SHOP)
    assert broken["outcome"] == "failed"
    log = broken["tasks"]["collect"]["log"]
    assert log["kind"] == "file" and Path(log["text"]).exists()
    assert data["glance"]["ok"] == 5 and data["glance"]["failed"] == 1  # six samples, one broken
    dom = dump_dom(page, fragment="sort=duration-desc")
    assert 'data-sorted="yes"' in dom and BROKEN_SHOP in dom
    png = screenshot(page, tmp_path / "demo-report.png", width=1280, height=1500)
    with Image.open(png) as image:
        assert image.size == (1280, 1500) and max(ImageStat.Stat(image.convert("RGB")).stddev) > 20
    if os.environ.get("UPDATE_REPORT_PNG") == "1":
        # `UPDATE_REPORT_PNG=1 pytest tests/submitter/test_nightreport.py -k demo` refreshes the
        # README's screenshot from a real demo night.
        shutil.copyfile(png, ROOT / "docs" / "report.png")
