"""The status page in a real browser: Debian's Chromium (installed by this
test if missing), headless, loads the page from a live server, finds the
schedules the test created, follows the link to one schedule's page, and
keeps screenshots as test artifacts (ANNEAL_BUILD_DIR/test-artifacts/).
Hostile strings (a <script> label, markup in a display name and a reason)
render as text and never run.
"""

from __future__ import annotations

import html.parser
import subprocess
import urllib.parse

from conftest import BUILD_DIR, debian_program

ARTIFACTS = BUILD_DIR / "test-artifacts" / "status-page"
HOSTILE = "<script>document.title='pwned'</script>"


def _chromium() -> str:
    return debian_program("chromium", "chromium")


def _browser(url: str, *args: str) -> str:
    """Runs headless Chromium on `url`; its stdout (the DOM with
    --dump-dom)."""
    argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--hide-scrollbars", "--window-size=1400,1200", *args, url]
    done = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, timeout=120)
    assert done.returncode == 0, "chromium exited with %d" % done.returncode
    return done.stdout


class _Dom(html.parser.HTMLParser):
    """The links, the text and the element names of a dumped DOM."""

    def __init__(self, text: str):
        super().__init__()
        self.links, self.tags, self.text, self.title = [], [], [], None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_title = tag == "title"
        if tag == "a":
            self.links.append(dict(attrs).get("href", ""))

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title = data


def test_status_page_in_chromium(server, client):
    client.create("job-a", {"max_lr": 0.1, "min_lr": 0.001,
                            "warm_restarts": {"period": 50,
                                              "period_mult": 2}},
                  labels={"team": HOSTILE},
                  display_name='<img src=x onerror="document.title=1">')
    client.create("job-b", {"max_lr": 0.05, "cosine": {"period": 400}},
                  labels={"team": "vision"})
    client.evaluate_range("job-a", 0, 320)
    client.evaluate_range("job-b", 0, 150)
    for step in range(0, 320, 10):
        client.report("job-a", step, {"loss": 3.0 / (1 + step / 50)})
    client.restart("job-a", reason="escape <b>the plateau</b>")
    base = "http://127.0.0.1:%d" % server.metrics_port
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    index = _Dom(_browser(base + "/", "--dump-dom"))
    assert index.title == "anneal"  # no script ran
    assert "script" not in index.tags and "img" not in index.tags
    text = "".join(index.text)
    assert "team=" + HOSTILE in text
    assert '<img src=x onerror="document.title=1">' in text
    assert "serving" in text and "2 schedules" in text
    assert index.tags.count("svg") == 2  # a plot per schedule
    assert "/schedules/job-a" in index.links
    assert "/schedules/job-b" in index.links

    # A label filter lists job-b only.
    query = urllib.parse.urlencode({"filter": 'labels.team = "vision"'})
    filtered = _Dom(_browser(base + "/?" + query, "--dump-dom"))
    assert "/schedules/job-b" in filtered.links
    assert "/schedules/job-a" not in filtered.links

    # Follow the link to the schedule's page: its whole timeline.
    link = next(l for l in index.links if l.endswith("job-a"))
    page = _Dom(_browser(urllib.parse.urljoin(base + "/", link), "--dump-dom"))
    assert page.title == "anneal: job-a"
    text = "".join(page.text)
    assert "Timeline" in text
    assert "restart" in text and "escape <b>the plateau</b>" in text
    assert "b" not in page.tags
    assert "loss" in text  # the reported metric beside the LR
    assert "max step served 319" in text

    for name, url in (("index", base + "/"),
                      ("schedule", base + link)):
        png = ARTIFACTS / (name + ".png")
        if png.exists():
            png.unlink()
        _browser(url, "--screenshot=%s" % png)
        assert png.exists() and png.stat().st_size > 10_000, png
