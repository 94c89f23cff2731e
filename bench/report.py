#!/usr/bin/env python3
"""Ratio table (and optionally the SVG chart) from the JSON lines of one
bench/run.sh run.

Usage: report.py [--svg PATH] [--ab AB.json] vklive-pubsub.json centrifuge-js.json centrifuge-python.json

AB.json (from BASE=<rev> bench/run.sh) holds the interleaved runs of the
base commit's bench and this one's: {"base": rev, "runs": [{"build": "base"
or "head", "workload": "e2e" or "e2e-current", "marginal_cpu_us": …}, …]}.

The first file is examples/bench.rs's line ({"client":"vklive-pubsub",
"results":{"e2e":…,"channels":…,"latency":…}}); the others are the peers'
({"client":…,"marginal_cpu_us":…}). Prints the table, the targets, and one
JSON line with everything and the machine.
"""

import os
import json
import platform
import subprocess
import sys
from html import escape


def command(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine():
    model = ""
    for line in command("lscpu").splitlines():
        if line.startswith("Model name"):
            model = line.split(":", 1)[1].strip()
    return {
        "nproc": command("nproc"),
        "cpu": model,
        "rustc": command("rustc", "--version"),
        "node": command("node", "--version"),
        "python": platform.python_version(),
    }


def load(path):
    with open(path, encoding="utf-8") as file:
        return json.loads(file.read().strip().splitlines()[-1])


def svg_chart(rows, path):
    """Horizontal bars of CPU per event, one per client, values written on them."""
    width, left, bar, gap, top = 820, 250, 34, 16, 54
    height = top + len(rows) * (bar + gap) + 40
    scale = (width - left - 90) / max(value for _, value, _ in rows)
    colours = {"vklive-pubsub": "#d9480f", "vklive-pubsub (current_thread)": "#f08c00",
               "vklive-pubsub, ChatSummary": "#e8590c",
               "transport floor (no payload decode)": "#adb5bd",
               "centrifuge-js": "#1971c2", "centrifuge-python": "#2f9e44"}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="14">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="24" font-size="16" font-weight="bold">CPU per chat publication, end to end (lower is better)</text>',
        f'<text x="{left}" y="42" fill="#555" font-size="12">marginal CPU of 200k vs 20k publications, 100 a frame, same emulator, same run</text>',
    ]
    for index, (name, value, label) in enumerate(rows):
        y = top + index * (bar + gap)
        length = max(value * scale, 1)
        out.append(f'<text x="{left - 10}" y="{y + bar / 2 + 5}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="{colours.get(name, "#868e96")}"/>')
        out.append(f'<text x="{left + length + 8:.1f}" y="{y + bar / 2 + 5}">{escape(label)}</text>')
    axis = top + len(rows) * (bar + gap)
    out.append(f'<line x1="{left}" y1="{top - 6}" x2="{left}" y2="{axis - gap + 6}" stroke="#333"/>')
    out.append(f'<text x="{left}" y="{axis + 14}" fill="#555" font-size="12">µs of CPU per event (user + system, whole client process)</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(out) + "\n")


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def ab_summary(path):
    """Medians of the interleaved base/head runs, per workload."""
    with open(path, encoding="utf-8") as file:
        ab = json.load(file)
    out = {"base": ab.get("base"), "workloads": {}}
    for workload in ("e2e", "e2e-current"):
        figures = {build: [run["marginal_cpu_us"] for run in ab["runs"]
                           if run["build"] == build and run["workload"] == workload]
                   for build in ("base", "head")}
        if figures["base"] and figures["head"]:
            base, head = median(figures["base"]), median(figures["head"])
            out["workloads"][workload] = {"base_us": base, "head_us": head, "ratio": head / base,
                                          "base_runs": figures["base"], "head_runs": figures["head"]}
    return out


def main():
    args = sys.argv[1:]
    svg = ab_path = None
    while args[:1] in (["--svg"], ["--ab"]):
        if args[0] == "--svg":
            svg = args[1]
        else:
            ab_path = args[1]
        args = args[2:]
    ours = load(args[0])
    peers = [load(path) for path in args[1:]]
    results = ours["results"]
    e2e = results.get("e2e", {})
    base = e2e.get("marginal_cpu_us")
    rows = [("vklive-pubsub", base)]
    current = results.get("e2e-current", {}).get("marginal_cpu_us")
    if current is not None:
        rows.append(("vklive-pubsub (current_thread)", current))
    summary = results.get("e2e-summary", {}).get("marginal_cpu_us")
    if summary is not None:
        rows.append(("vklive-pubsub, ChatSummary", summary))
    floor = results.get("e2e-floor", {}).get("marginal_cpu_us")
    if floor is not None:
        rows.append(("transport floor (no payload decode)", floor))
    rows += [(peer["client"], peer["marginal_cpu_us"]) for peer in peers]

    print()
    print(f"CPU per event, end to end ({e2e.get('large')} vs {e2e.get('small')} publications, {e2e.get('per_frame')} a frame)")
    print(f"  {'client':<38} {'µs/event':>9} {'× vklive-pubsub':>16}")
    for name, value in rows:
        print(f"  {name:<38} {value:>9.3f} {value / base:>15.2f}×")
    js = next((value for name, value in rows if name == "centrifuge-js"), None)

    for key in ("e2e", "e2e-current", "e2e-summary", "e2e-floor"):
        if results.get(key, {}).get("lagged"):
            print(f"  WARNING: {key} dropped {results[key]['lagged']} publications (Lagged): its figure is not valid")
    ab = ab_summary(ab_path) if ab_path else None
    if ab:
        print()
        print(f"interleaved with the base commit {ab['base']} (A B A B …, medians)")
        for workload, figures in ab["workloads"].items():
            print(f"  {workload:<12} base {figures['base_us']:.3f} µs  this {figures['head_us']:.3f} µs  → {figures['ratio']:.2f}×"
                  f"  (base runs {[round(v, 2) for v in figures['base_runs']]}, this {[round(v, 2) for v in figures['head_runs']]})")
    checks = []
    # The standing rule: a change may not cost more than 5% end to end against
    # the commit before it (AB_TARGET sets another bound, e.g. 0.6 for a speed-up).
    bound = float(os.environ.get("AB_TARGET", "1.05"))
    if ab and "e2e" in ab["workloads"]:
        ratio = ab["workloads"]["e2e"]["ratio"]
        checks.append((f"end to end ≤ {bound}× of {ab['base']} (interleaved, #[tokio::main])", ratio <= bound, f"{ratio:.2f}×"))
    if ab and "e2e-current" in ab["workloads"]:
        ratio = ab["workloads"]["e2e-current"]["ratio"]
        checks.append((f"end to end ≤ {bound}× of {ab['base']} (interleaved, current_thread)", ratio <= bound, f"{ratio:.2f}×"))
    if js is not None:
        figure = f"{js / base:.1f}×" + (f" ({js / current:.1f}× on current_thread)" if current else "")
        if ab and "e2e" in ab["workloads"]:
            # For reading the verdict, not for making it: single runs move a lot here.
            figure += f"; {js / ab['workloads']['e2e']['head_us']:.1f}× from the interleaved median"
        checks.append(("≥ 5× cheaper than centrifuge-js", js / base >= 5, figure))
    if floor is not None:
        checks.append(("distance to the transport floor", True, f"{base - floor:.3f} µs of {base:.3f} µs is payload decoding"))
    channels = results.get("channels")
    if channels:
        checks.append(("1000 channels subscribed ≤ 1 s", channels["subscribe_s"] <= 1.0 and channels["subscribed"] == 1000, f"{channels['subscribe_s']:.3f} s"))
        checks.append(("≤ 10 token requests", channels["subscription_token_requests"] <= 10, f"{channels['subscription_token_requests']} subscription + {channels['connection_token_requests']} connection"))
        checks.append(("resident memory ≤ 20 MB", channels["rss_mb"] <= 20, f"{channels['rss_mb']:.1f} MB (peak {channels['peak_rss_mb']:.1f} MB)"))
        checks.append(("all resubscribed with recovery ≤ 2 s after the server is back", channels["resubscribe_s"] <= 2 and channels["recovered"] == channels["channels"], f"{channels['resubscribe_s']:.3f} s, {channels['recovered']} recovered"))
    latency = results.get("latency")
    if latency:
        checks.append((f"p99 latency at {latency['rate']:.0f}/s ≤ 1 ms", latency["p99_ms"] <= 1.0, f"p50 {latency['p50_ms']:.3f} / p99 {latency['p99_ms']:.3f} / max {latency['max_ms']:.3f} ms"))
    print()
    print("targets")
    for what, met, figure in checks:
        print(f"  {'met ' if met else 'MISS'}  {what:<66} {figure}")
    print()

    if svg:
        svg_chart([(name, value, f"{value:.2f} µs ({value / base:.2f}×)") for name, value in rows], svg)
        print(f"chart written to {svg}", file=sys.stderr)
    print(json.dumps({"machine": machine(), "vklive-pubsub": results, "peers": peers, "ab": ab,
                      "targets": [{"target": what, "met": met, "figure": figure} for what, met, figure in checks]}))


if __name__ == "__main__":
    main()
