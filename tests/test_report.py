"""srnn report: a page that holds every section, plots exactly metrics.jsonl, and needs nothing outside itself;
and, where Chromium is installed, a real browser that loads it without errors."""
import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from cli.main import srnn as srnn_cli


def embedded_metrics(page: str):
    return json.loads(re.search(r'<script type="application/json" id="metrics">(.*?)</script>', page, re.S)
                      .group(1).replace("<\\/", "</"))


def external_references(page: str) -> list:
    return [ref for ref in re.findall(r'(?:src|href)="([^"]*)"', page) if not ref.startswith(("data:", "#"))]


@pytest.fixture(scope="module")
def report_page(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(srnn_cli, ["report", str(tiny_run), "-o", str(out), "--evaluate"])
    assert result.exit_code == 0, result.output
    return out


def test_a_run_report_holds_every_section_plots_the_metrics_and_stands_alone(tiny_run, report_page):
    page = report_page.read_text()
    # the page leads with the numbers and the music; how the run was made comes last
    order = ("Test evaluation", "Samples beside test pieces", "Sample statistics against the test data", "Training",
             "Data", "Configuration")
    places = [page.index(f"<h2>{heading}</h2>") for heading in order]
    assert places == sorted(places)
    lines = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert embedded_metrics(page) == lines
    assert page.count("<audio controls") == 6 and page.count("data:audio/wav;base64,") == 6
    assert page.count('<img alt="sample') == 3 and page.count('<img alt="test piece') == 3
    assert "-" in re.search(r"<td>ELBO</td><td>([^<]*)</td>", page).group(1)  # a negative ELBO per frame
    assert external_references(page) == []


def test_a_report_of_several_runs_overlays_them_in_a_sortable_table(tiny_run, tmp_path):
    for name in ("r1", "r2"):
        shutil.copytree(tiny_run, tmp_path / "sweep" / name)
    result = CliRunner().invoke(srnn_cli, ["report", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "sweep" / "report.html").read_text()
    assert page.count("<tr><td>r") == 2 and "class=sortable" in page
    assert set(embedded_metrics(page)) == {str(tmp_path / "sweep" / "r1"), str(tmp_path / "sweep" / "r2")}
    assert external_references(page) == []
    again = CliRunner().invoke(srnn_cli, ["report", str(tmp_path / "sweep")])
    assert again.exit_code == 1 and "--force" in again.output


def _chromium():
    return next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (apt-get install chromium) for a real browser")
def test_the_page_loads_in_a_real_browser_without_errors_and_its_images_decode(report_page, tmp_path):
    probe = tmp_path / "probe.html"
    check = ("<script>addEventListener('load', () => { document.body.dataset.images = "
             "[...document.images].every(i => i.complete && i.naturalWidth > 0) ? 'decoded' : 'broken'; });</script>")
    probe.write_text(report_page.read_text().replace("</body>", check + "</body>"))
    result = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                             "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert 'data-images="decoded"' in result.stdout, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert console == []


def test_tensorboard_without_the_package_is_one_clear_line(bach_file, tmp_path):
    pytest.importorskip("torch")
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed here; the message is for machines without it")
    except ImportError:
        pass
    result = CliRunner().invoke(srnn_cli, ["train", "--data", str(bach_file), "--run-dir", str(tmp_path / "run"),
                                           "--epochs", "1", "--tensorboard"])
    assert result.exit_code == 1 and "pip install pyro-srnn[tensorboard]" in result.output
    assert not (tmp_path / "run").exists()
