#!/usr/bin/env python3
"""Open every page of the built book (docs/book) in headless Chromium and fail on what a reader
would see broken:

- raw TeX in the rendered text outside code (`\\(`, `\\[`, `$$`, `\\frac`, any `\\name`), or a
  KaTeX error box;
- math set without KaTeX's fonts (the vendored stylesheet or fonts did not load);
- an image that did not load, an internal link to a missing page or a missing `#anchor`;
- a listing that is missing: an empty code block, or an `{{#include ...}}` / `ANCHOR` left over;
- a request that leaves the book (the built book must be self-contained);
- at a 1280 px wide window: a page wider than the window, or a table that sticks out of the
  text column without a horizontal scroll container around it.

Usage: scripts/book_browser_check.py [BOOK_DIR] (default: docs/book beside this script's repo).
Chromium: $CHROMIUM, else /usr/bin/chromium. It is driven through the DevTools protocol over a
pipe (--remote-debugging-pipe), so no package beyond Python's standard library is needed.
"""

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

WIDTH, HEIGHT = 1280, 900
PAGE_TIMEOUT = 30.0

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--allow-file-access-from-files",
    f"--window-size={WIDTH},{HEIGHT}",
    "--remote-debugging-pipe",
]

# Runs in the page once it has loaded (and its fonts are ready); returns what Python checks.
PROBE = r"""
(async () => {
  await document.fonts.ready;
  const main = document.querySelector('main') || document.body;
  // Rendered text outside code, with KaTeX's output (math already set) left out.
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, .katex, script, style').forEach(e => e.remove());
  const text = clone.textContent;
  const katex = [...main.querySelectorAll('.katex')];
  const katexFont = katex.length === 0 ? true :
    document.fonts.check('16px KaTeX_Main') &&
    getComputedStyle(katex[0]).fontFamily.includes('KaTeX');
  const images = [...document.images].map(img => ({
    src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0 }));
  const links = [...main.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id)
    .concat([...document.querySelectorAll('a[name]')].map(e => e.getAttribute('name')));
  const code = [...main.querySelectorAll('pre > code')].map(c => c.textContent);
  const column = main.getBoundingClientRect();
  const tables = [...main.querySelectorAll('table')].map((t, i) => {
    const r = t.getBoundingClientRect();
    let scroller = null;
    for (let e = t.parentElement; e && e !== main.parentElement; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll') { scroller = e; break; }
    }
    const s = scroller ? scroller.getBoundingClientRect() : null;
    return { index: i, left: r.left, right: r.right, width: r.width,
             scroller: s ? { left: s.left, right: s.right } : null,
             head: (t.querySelector('tr') || t).textContent.trim().slice(0, 60) };
  });
  return { text, katex: katex.length, katexFont,
           katexErrors: main.querySelectorAll('.katex-error').length,
           images, links, ids, code, tables,
           column: { left: column.left, right: column.right },
           viewport: window.innerWidth,
           scrollWidth: document.documentElement.scrollWidth };
})()
"""

RAW_TEX = re.compile(r"\\[()\[\]]|\$\$|\\[A-Za-z]+")


class Browser:
    """One Chromium process; DevTools messages are NUL-terminated JSON on fds 3 (in) and 4 (out)."""

    def __init__(self, binary):
        self.profile = tempfile.mkdtemp(prefix="book-check-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # The child gets our pipe ends as its fds 3 and 4 (os.pipe's own fds are not
        # inheritable, so with close_fds=False nothing else leaks into it).
        def child_fds():
            # Move both above 10 first: either may itself be 3 or 4.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w)]
            for target, fd in zip((3, 4), high):
                os.dup2(fd, target)
                os.set_inheritable(target, True)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self.from_browser], [], [], 0.5)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buffer += chunk
            elif self.proc.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.proc.returncode}")
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=None, timeout=PAGE_TIMEOUT):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method, session, timeout=PAGE_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            for k, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session:
                    del self.events[k]
                    return e
            self.events.append(self._read_message(deadline))


def page_files(book):
    skip = {"print.html", "toc.html", "404.html"}
    return sorted(p for p in book.rglob("*.html") if p.name not in skip and "theme" not in p.parts)


def check_link(book, page, href, ids_of):
    """An error message for a broken internal link, else None."""
    parsed = urllib.parse.urlparse(href)
    if parsed.scheme in ("http", "https", "mailto") or href.startswith("//"):
        return None  # external: not followed (no network), not part of the book
    if parsed.scheme and parsed.scheme != "file":
        return None
    path = urllib.parse.unquote(parsed.path)
    target = page if path == "" else (page.parent / path).resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"link to a missing file: {href}"
    if parsed.fragment and target.suffix == ".html":
        ids = ids_of(target)
        if ids is not None and urllib.parse.unquote(parsed.fragment) not in ids:
            return f"link to a missing anchor: {href}"
    return None


def main():
    repo = Path(__file__).resolve().parent.parent
    book = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else repo / "docs" / "book"
    if not (book / "index.html").exists():
        sys.exit(f"no built book at {book} (run `mdbook build docs` first)")
    binary = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(binary):
        sys.exit(f"Chromium not found at {binary} (apt-get install chromium, or set CHROMIUM)")

    pages = page_files(book)
    browser = Browser(binary)
    problems = []
    results = {}
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        browser.send("Page.enable", session=session)
        browser.send("Network.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        for page in pages:
            browser.events.clear()
            browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
            browser.wait_event("Page.loadEventFired", session)
            value = browser.send(
                "Runtime.evaluate",
                {"expression": PROBE, "awaitPromise": True, "returnByValue": True},
                session=session,
            )
            if "exceptionDetails" in value:
                problems.append((page, f"probe failed: {value['exceptionDetails']}"))
                continue
            result = value["result"]["value"]
            outside = [
                e["params"]["request"]["url"]
                for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"
                and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:"))
            ]
            result["outside"] = outside
            results[page] = result
    finally:
        browser.close()

    def ids_of(path):
        r = results.get(path)
        return set(r["ids"]) if r else None

    notes = []
    for page, r in results.items():
        rel = page.relative_to(book)
        for m in RAW_TEX.finditer(r["text"]):
            around = r["text"][max(0, m.start() - 40) : m.end() + 40].replace("\n", " ")
            problems.append((rel, f"raw TeX {m.group()!r} in the text: ...{around}..."))
        if r["katexErrors"]:
            problems.append((rel, f"{r['katexErrors']} KaTeX error(s)"))
        if r["katex"] and not r["katexFont"]:
            problems.append((rel, "math is not set in KaTeX's fonts (stylesheet or fonts missing)"))
        for img in r["images"]:
            if not img["ok"]:
                problems.append((rel, f"image did not load: {img['src']}"))
        for href in r["links"]:
            err = check_link(book, page, href, ids_of)
            if err:
                problems.append((rel, err))
        for k, code in enumerate(r["code"]):
            if not code.strip():
                problems.append((rel, f"code block {k + 1} is empty (a listing is missing)"))
            if "ANCHOR" in code:
                problems.append((rel, f"code block {k + 1} shows an ANCHOR line"))
        if re.search(r"\{\{\s*#(rustdoc_)?include", r["text"] + "".join(r["code"])):
            problems.append((rel, "an {{#include}} was not expanded"))
        for url in r["outside"]:
            problems.append((rel, f"request outside the book: {url}"))
        if r["scrollWidth"] > r["viewport"] + 1:
            problems.append(
                (rel, f"page is {r['scrollWidth']} px wide in a {r['viewport']} px window")
            )
        for t in r["tables"]:
            # A table may be wider than the column only inside a scroll container that fits.
            right = t["scroller"]["right"] if t["scroller"] else t["right"]
            column = r["column"]["right"] - r["column"]["left"]
            if t["scroller"] and t["width"] > column + 1:
                notes.append(f"note {rel}: table {t['index'] + 1} ({t['head'][:30]!r}...) is"
                             f" {t['width']:.0f} px in a {column:.0f} px column: it scrolls")
            if right > min(r["column"]["right"], r["viewport"]) + 1:
                problems.append(
                    (
                        rel,
                        f"table {t['index'] + 1} ({t['head']!r}...) is {t['width']:.0f} px wide and"
                        f" sticks out of the text column without a scroll container",
                    )
                )

    katex_pages = sum(1 for r in results.values() if r["katex"])
    print(
        f"book check: {len(results)} pages opened in Chromium at {WIDTH} px,"
        f" {sum(r['katex'] for r in results.values())} formulas on {katex_pages} pages,"
        f" {sum(len(r['code']) for r in results.values())} code blocks,"
        f" {sum(len(r['images']) for r in results.values())} images,"
        f" {sum(len(r['links']) for r in results.values())} links,"
        f" {sum(len(r['tables']) for r in results.values())} tables"
    )
    if len(results) != len(pages):
        problems.append((book, f"only {len(results)} of {len(pages)} pages were checked"))
    for note in notes:
        print(note)
    for where, what in problems:
        print(f"FAIL {where}: {what}")
    if problems:
        print(f"book check: {len(problems)} problem(s)")
        sys.exit(1)
    print("book check: ok")


if __name__ == "__main__":
    main()
