#!/usr/bin/env python3
"""Turns a terminal capture with SGR colour codes (`tmux capture-pane -e -p`) into an SVG picture.

usage: ansi2svg.py SCREEN.ansi OUT.svg
"""
import html
import re
import sys

BASE16 = [
    "#1e1e1e", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
]
DEFAULT_FG, DEFAULT_BG = "#d4d4d4", "#1e1e1e"
CHAR_W, LINE_H, FONT = 8.4, 18, 14


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    g = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (g, g, g)


def apply_sgr(style, params):
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style.clear()
        elif c == 1:
            style["bold"] = True
        elif c == 3:
            style["italic"] = True
        elif c == 4:
            style["underline"] = True
        elif c == 7:
            style["reverse"] = True
        elif c == 22:
            style.pop("bold", None)
        elif c == 23:
            style.pop("italic", None)
        elif c == 24:
            style.pop("underline", None)
        elif c == 27:
            style.pop("reverse", None)
        elif 30 <= c <= 37:
            style["fg"] = BASE16[c - 30]
        elif 90 <= c <= 97:
            style["fg"] = BASE16[c - 90 + 8]
        elif 40 <= c <= 47:
            style["bg"] = BASE16[c - 40]
        elif 100 <= c <= 107:
            style["bg"] = BASE16[c - 100 + 8]
        elif c == 39:
            style.pop("fg", None)
        elif c == 49:
            style.pop("bg", None)
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style[key] = xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style[key] = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                i += 4
        i += 1


def parse(text):
    rows = []
    for line in text.rstrip("\n").split("\n"):
        style, cells = {}, []
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
            if m:
                apply_sgr(style, m.group(1))
                continue
            for ch in part:
                cells.append((ch, dict(style)))
        rows.append(cells)
    return rows


def colours(style):
    fg, bg = style.get("fg", DEFAULT_FG), style.get("bg")
    if style.get("reverse"):
        fg, bg = bg or DEFAULT_BG, fg
    return fg, bg


def render(rows):
    width = max(len(r) for r in rows)
    w, h = int(width * CHAR_W) + 24, len(rows) * LINE_H + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f'<rect width="100%" height="100%" rx="6" fill="{DEFAULT_BG}"/>',
        f'<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}" '
        'xml:space="preserve">',
    ]
    for y, cells in enumerate(rows):
        top = 12 + y * LINE_H
        x = 0
        while x < len(cells):
            style = cells[x][1]
            end = x
            while end < len(cells) and cells[end][1] == style:
                end += 1
            fg, bg = colours(style)
            left = 12 + x * CHAR_W
            if bg:
                out.append(f'<rect x="{left:.1f}" y="{top}" width="{(end - x) * CHAR_W:.1f}" '
                           f'height="{LINE_H}" fill="{bg}"/>')
            run = "".join(ch for ch, _ in cells[x:end])
            if run.strip():
                attrs = f'fill="{fg}"'
                if style.get("bold"):
                    attrs += ' font-weight="bold"'
                if style.get("italic"):
                    attrs += ' font-style="italic"'
                if style.get("underline"):
                    attrs += ' text-decoration="underline"'
                out.append(f'<text x="{left:.1f}" y="{top + LINE_H - 5}" {attrs} '
                           f'textLength="{(end - x) * CHAR_W:.1f}">{html.escape(run)}</text>')
            x = end
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        rows = parse(f.read())
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(render(rows))


if __name__ == "__main__":
    main()
