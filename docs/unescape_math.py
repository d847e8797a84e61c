#!/usr/bin/env python3
"""mdBook preprocessor: undo Markdown's backslash escapes inside math, before KaTeX renders it.

The chapters write math the way mdBook's MathJax support wants it: inside `\\( ... \\)` and
`\\[ ... \\]`, where Markdown was to turn `\\(` into `\(`, `\_` into `_`, `\\,` into `\,` and
`\\|` into `\|` before MathJax read the page. The KaTeX preprocessor renders at build time,
before Markdown runs, so it would see those escapes raw (`u\_{t}` would show an underscore).
This step applies CommonMark's rule (a backslash before ASCII punctuation stands for that
character) to each math body and to nothing else, so KaTeX gets the TeX that MathJax got.

It finds math exactly as the KaTeX preprocessor does (its scanner, `scan.rs` in mdbook-katex
0.9): code spans and fences (runs of backticks) are skipped, a backslash outside math skips
the next character, a right delimiter preceded by an odd number of backslashes does not close.

It also refuses math that Markdown would have broken: a single backslash before one of
`, ; : ! { } | # % &` inside math is a TeX command (`\,` a thin space, `\{` a brace) that
Markdown turns into the bare character, so `x\,y` would show "x,y" (that was the bug of
`x\,\Phi(x)`). Such math must double the backslash, as the chapters do (`x\\,y`). The build
then fails with the chapter and the formula.

mdBook calls it as `unescape_math.py supports <renderer>` (every renderer is fine) and then
with `[context, book]` as JSON on stdin; it writes the book back on stdout.
"""

import json
import re
import sys

BLOCK = ("\\\\[", "\\\\]")
INLINE = ("\\\\(", "\\\\)")
# CommonMark: any ASCII punctuation character may be backslash-escaped.
ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# A TeX command that Markdown would eat: one backslash (not two) before these characters.
LOST = re.compile(r"(?<!\\)\\[,;:!{}|#%&]")


def unescape(tex):
    """What Markdown makes of `tex`: each backslash-escaped punctuation character, unescaped."""
    return ESCAPE.sub(r"\1", tex)


def closing(text, start, right):
    """Index of the first `right` at or after `start` not preceded by an odd run of backslashes."""
    i = start
    while True:
        i = text.find(right, i)
        if i < 0:
            return -1
        k = i - 1
        run = 0
        while k >= 0 and text[k] == "\\":
            run += 1
            k -= 1
        if run % 2 == 0:
            return i
        i += len(right)


def process(text, lost=None):
    """`text` with every math body unescaped, delimiters and everything else untouched; each
    math body with a lost escape is appended to `lost`."""
    out = []
    i = 0
    n = len(text)
    done = 0
    while i < n:
        c = text[i]
        delim = next((d for d in (BLOCK, INLINE) if text.startswith(d[0], i)), None)
        if delim is not None:
            body = i + len(delim[0])
            end = closing(text, body, delim[1])
            if end < 0:
                break
            out.append(text[done:body])
            tex = text[body:end]
            if lost is not None and LOST.search(tex):
                lost.append(tex.strip())
            out.append(unescape(tex))
            done = end
            i = end + len(delim[1])
        elif c == "\\":
            i += 2
        elif c == "`":
            ticks = len(text[i:]) - len(text[i:].lstrip("`"))
            fence = "`" * ticks
            j = i + ticks
            while True:
                j = text.find(fence, j)
                if j < 0:
                    j = n
                    break
                k = j + ticks
                if k < n and text[k] == "`":
                    while k < n and text[k] == "`":
                        k += 1
                    j = k
                    continue
                j = k
                break
            i = j
        else:
            i += 1
    out.append(text[done:])
    return "".join(out)


def walk(items, problems):
    for item in items:
        if isinstance(item, dict) and "Chapter" in item:
            chapter = item["Chapter"]
            lost = []
            chapter["content"] = process(chapter["content"], lost)
            for tex in lost:
                problems.append(f"{chapter.get('source_path') or chapter['name']}: {tex}")
            walk(chapter.get("sub_items", []), problems)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "supports":
        sys.exit(0)
    _context, book = json.load(sys.stdin)
    problems = []
    walk(book.get("sections", book.get("items", [])), problems)
    if problems:
        print("unescape_math: a single backslash before , ; : ! { } | # % & in math is eaten by "
              "Markdown; write two (\\\\, for a thin space):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    json.dump(book, sys.stdout)


if __name__ == "__main__":
    main()
