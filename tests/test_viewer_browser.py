"""The HTML graph viewer in real headless Chromium.

The page, opened with ``#selftest``, checks itself after rendering (see
``graphc/export/viewer_assets.py``) and writes a JSON report into ``<pre id="selftest-result">``;
``chromium --headless --dump-dom`` prints the DOM and the test reads the report.  Skipped when
no Chromium is installed (``.ci/install_browser_deps.sh`` installs Debian's ``chromium``).
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import export

sys.path.insert(0, os.path.dirname(__file__))
from test_export import HOSTILE, mlp_graph  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="headless Chromium is not installed "
                                                        "(.ci/install_browser_deps.sh)")


def chromium(tmp_path, *args, timeout=90) -> str:
    cmd = [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-3000:]
    return proc.stdout.decode("utf-8", "replace")


def selftest(tmp_path, page) -> tuple[dict, str]:
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom",
                   page.resolve().as_uri() + "#selftest")
    m = re.search(r'<pre id="selftest-result">(.*?)</pre>', dom, re.S)
    assert m and m.group(1).strip(), f"no selftest result in the DOM:\n{dom[-2000:]}"
    return json.loads(html.unescape(m.group(1))), dom


def test_mlp_training_graph_in_chromium(tmp_path):
    x, y, loss, params, grads, updates = mlp_graph()
    page = tmp_path / "mlp.html"
    export.to_html([loss], page, updates=updates, title="3-layer MLP training step")
    res, dom = selftest(tmp_path, page)
    n = len(export.to_networkx([loss], updates=updates))
    assert res["errors"] == []
    assert res["expected_nodes"] == res["rendered_nodes"] == n
    assert res["rendered_edges"] == res["expected_edges"]
    assert res["click"]["ok"], res["click"]
    assert "forward" in res["click"]["details"] and "(None, 64)" in res["click"]["details"]
    assert res["backward_total"] > 0
    assert res["after_hide"]["backward_visible"] == 0
    assert res["after_hide"]["forward_visible"] == res["forward_total"]
    assert res["after_hide"]["visible"] < n
    assert res["after_show"]["visible"] == n
    assert res["search_relu"] == 4  # relu twice, relu' twice
    assert res["steps"] > 0 and res["lit_after_walk"] == res["backward_total"]
    assert res["ok"] is True


def test_hostile_names_do_not_inject(tmp_path):
    p = gc.parameter(np.ones(3, "float32"), name=HOSTILE)
    q = gc.placeholder((3,), name="<img src=x onerror=\"document.title='pwned'\">")
    out = gc.sum(gc.relu(p * q))
    out.name = "</pre><pre id=\"selftest-result\">{\"ok\": true}</pre>"
    g = gc.grad(out, p)
    page = tmp_path / "hostile.html"
    export.to_html([out, g], page, title="</title><script>document.title='pwned'</script>")
    res, dom = selftest(tmp_path, page)
    assert res["errors"] == [] and res["ok"] is True
    assert res["rendered_nodes"] == len(export.to_networkx([out, g]))
    title = html.unescape(re.search(r"<title>(.*?)</title>", dom, re.S).group(1))
    assert title == "</title><script>document.title='pwned'</script>"  # shown, not run
    assert dom.count("<script") == 2  # nothing injected
    assert "<img" not in dom


def test_screenshot_renders(tmp_path):
    x, y, loss, params, grads, updates = mlp_graph(sizes=(20, 16, 8, 5))
    page = tmp_path / "mlp.html"
    export.to_html([loss], page, updates=updates)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--hide-scrollbars", "--window-size=1200,800",
             "--virtual-time-budget=3000", f"--screenshot={shot}", page.resolve().as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
