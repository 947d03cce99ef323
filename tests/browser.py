"""A page in headless Chromium, driven through ChromeDriver's W3C WebDriver HTTP API
with the standard library alone: which images loaded and at what size they are shown,
how the commands' lines break, and what the console said."""
import contextlib
import functools
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium():
    """(chromium, chromedriver) paths, or None where either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}").get("value")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    """An HTTP server on localhost for ``folder``; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# what the page shows, measured once every image is complete
LAYOUT = """
const frame = i => i.closest('.picture') || i;
return {
  viewport: {width: document.documentElement.clientWidth, scroll_width: document.documentElement.scrollWidth},
  images: Array.from(document.images).map(i => ({
    src: i.getAttribute('src'), shown_width: i.getBoundingClientRect().width,
    frame: {left: frame(i).getBoundingClientRect().left, right: frame(i).getBoundingClientRect().right,
            visible_width: frame(i).clientWidth, scroll_width: frame(i).scrollWidth}})),
  commands: Array.from(document.querySelectorAll('code.command')).map(c => ({
    text: c.textContent, lines: new Set(Array.from(c.getClientRects(), r => Math.round(r.top))).size,
    words: Array.from(c.querySelectorAll('span'), s => ({text: s.textContent, boxes: s.getClientRects().length}))})),
};"""


def inspect_page(url, user_data_dir, width=1400, height=1000):
    """Open ``url`` in a window ``width`` x ``height`` px; {"title": str, "console": [{level,
    message}],
    "images": [{src, complete, width (the PNG's), shown_width (on the page, CSS px), frame: the box
    it is shown in (.picture, or the image itself): {left, right, visible_width, scroll_width}}],
    "commands": [{text, lines: how many lines the code takes, words: [{text, boxes}]}] for each
    code.command, one word per argument span (boxes: its line boxes, 1 when unbroken),
    "viewport": {width, scroll_width} of the page}."""
    browser, driver = chromium()
    port = _free_port()
    proc = subprocess.Popen(
        [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": browser,
                "args": CHROMIUM_ARGS + [f"--user-data-dir={user_data_dir}"],
            },
        }
        session = _call(base, "POST", "/session", {"capabilities": {"alwaysMatch": caps}})[
            "sessionId"
        ]
        try:
            _call(
                base, "POST", f"/session/{session}/window/rect", {"width": width, "height": height}
            )
            _call(base, "POST", f"/session/{session}/url", {"url": url})
            # the load event can come before Chromium has finished decoding images far down
            # the page: wait (up to 30 s) until every image is complete, loaded or broken
            for _ in range(300):
                images = _call(
                    base,
                    "POST",
                    f"/session/{session}/execute/sync",
                    {
                        "args": [],
                        "script": (
                            "return Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                            "complete: i.complete, width: i.naturalWidth}));"
                        ),
                    },
                )
                if all(i["complete"] for i in images):
                    break
                time.sleep(0.1)
            title = _call(base, "POST", f"/session/{session}/execute/sync",
                          {"args": [], "script": "return document.title;"})
            layout = _call(
                base, "POST", f"/session/{session}/execute/sync", {"args": [], "script": LAYOUT}
            )
            console = _call(base, "POST", f"/session/{session}/se/log", {"type": "browser"})
        finally:
            _call(base, "DELETE", f"/session/{session}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for image, shown in zip(images, layout["images"]):
        image.update(shown)
    return {"images": images, "console": console, "title": title, "commands": layout["commands"],
            "viewport": layout["viewport"]}
