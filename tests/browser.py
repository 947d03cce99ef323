"""A page in headless Chromium, driven through ChromeDriver's W3C WebDriver HTTP API
with the standard library alone: which images loaded, and what the console said."""
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


def inspect_page(url, user_data_dir):
    """Open ``url``; {"images": [{src, complete, width}], "console": [{level, message}], "title": str}."""
    browser, driver = chromium()
    port = _free_port()
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": browser,
                                       "args": CHROMIUM_ARGS + [f"--user-data-dir={user_data_dir}"]}}
        session = _call(base, "POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        try:
            _call(base, "POST", f"/session/{session}/url", {"url": url})
            # the load event can come before Chromium has finished decoding images far down
            # the page: wait (up to 30 s) until every image is complete, loaded or broken
            for _ in range(300):
                images = _call(base, "POST", f"/session/{session}/execute/sync", {"args": [], "script": (
                    "return Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                    "complete: i.complete, width: i.naturalWidth}));")})
                if all(i["complete"] for i in images):
                    break
                time.sleep(0.1)
            title = _call(base, "POST", f"/session/{session}/execute/sync",
                          {"args": [], "script": "return document.title;"})
            console = _call(base, "POST", f"/session/{session}/se/log", {"type": "browser"})
        finally:
            _call(base, "DELETE", f"/session/{session}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"images": images, "console": console, "title": title}
