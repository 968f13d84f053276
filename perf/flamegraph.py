#!/usr/bin/python3
"""flamegraph.py — turn `perf script` output into a flame graph SVG, offline.

    perf script -i perf.data | perf/flamegraph.py --title "pipeline" > out.svg
    perf script -i perf.data | perf/flamegraph.py --folded > out.folded

Folds each sample's stack (root first, thread name at the bottom), then lays the folded
stacks out as nested boxes whose width is the share of samples. Self-contained (python3
stdlib), written for this project; the SVG has hover titles with sample counts and %.
"""
import argparse
import collections
import html
import sys
import zlib


def fold(lines):
    """perf script text -> Counter of 'comm;frame;...;leaf' -> samples."""
    counts = collections.Counter()
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                stack = [comm] + [f for f in reversed(frames)]
                counts[";".join(stack)] += 1
            comm, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            comm = line.split()[0] if line.split() else "?"
            frames = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        sym = parts[1]
        # "func+0x12 (dso)" -> "func"; unknown frames keep the dso name
        name, _, dso = sym.partition(" (")
        name = name.split("+0x")[0]
        if name in ("[unknown]", ""):
            name = "[" + dso.rstrip(")").split("/")[-1] + "]"
        frames.append(name.replace(";", ":"))
    if comm is not None:
        counts[";".join([comm] + list(reversed(frames)))] += 1
    return counts


def build_tree(counts):
    root = {"n": 0, "kids": {}}
    for stack, n in counts.items():
        node = root
        node["n"] += n
        for frame in stack.split(";"):
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += n
    return root


def color(name):
    h = zlib.crc32(name.encode())
    if name.startswith("dbi_") or "dbi" in name:
        return "rgb(%d,%d,%d)" % (230, 120 + h % 80, 40 + h % 40)
    if name.startswith("[") or "kernel" in name:
        return "rgb(%d,%d,%d)" % (180 + h % 50, 180 + h % 50, 190)
    return "rgb(%d,%d,%d)" % (220 + h % 35, 80 + h % 100, 60 + h % 40)


def render(root, title, width=1400, row=16):
    total = root["n"] or 1
    boxes = []

    def walk(node, name, x, depth):
        w = node["n"] / total * width
        if w < 0.3:
            return
        if name is not None:
            boxes.append((x, depth, w, name, node["n"]))
        cx = x
        for kname, kid in sorted(node["kids"].items()):
            walk(kid, kname, cx, depth + 1)
            cx += kid["n"] / total * width

    walk(root, None, 0.0, -1)
    maxdepth = max((b[1] for b in boxes), default=0) + 1
    height = (maxdepth + 3) * row
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           f'<rect width="100%" height="100%" fill="#fafafa"/>',
           f'<text x="{width / 2}" y="{row}" text-anchor="middle" font-size="14">{html.escape(title)}'
           f' ({total} samples)</text>']
    for x, depth, w, name, n in boxes:
        y = height - (depth + 1) * row - 4
        pct = n * 100.0 / total
        label = name if w > 7 * len(name) else (name[: int(w / 7) - 2] + ".." if w > 30 else "")
        out.append(f'<g><title>{html.escape(name)} ({n} samples, {pct:.2f}%)</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{max(w - 0.5, 0.1):.2f}" height="{row - 1}" '
                   f'fill="{color(name)}" rx="2"/>'
                   f'<text x="{x + 3:.2f}" y="{y + row - 4}">{html.escape(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--title", default="dbi flame graph")
    ap.add_argument("--folded", action="store_true", help="print folded stacks instead of SVG")
    args = ap.parse_args()
    counts = fold(sys.stdin)
    if args.folded:
        for stack, n in counts.most_common():
            print(stack, n)
        return
    sys.stdout.write(render(build_tree(counts), args.title))


if __name__ == "__main__":
    main()
