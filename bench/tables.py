#!/usr/bin/env python3
"""Prints the results tables of BENCHMARKS.md from a bench/measure.sh results folder.

    python3 bench/tables.py bench/results/<UTC time>
"""
import glob
import json
import os
import sys

ORDER = ["create-challenge", "device-approve", "device-poll", "full-flow", "enroll"]


def rows(folder, database):
    found = []
    for path in glob.glob(os.path.join(folder, f"{database}-*.json")):
        with open(path) as f:
            try:
                found.extend(json.load(f))
            except json.JSONDecodeError:
                print(f"(skipped {path}: not complete JSON; still running or failed)", file=sys.stderr)
    return sorted(found, key=lambda r: (r["prefill"], ORDER.index(base(r)), r["target_rate"] is not None))


def base(r):
    """The scenario's name without the bench's " @50%" suffix of half-load rows."""
    return r["scenario"].split(" ")[0]


def num(x, digits=0):
    return f"{x:,.{digits}f}"


def per_request(seconds, r):
    return num(seconds / r["requests"] * 1e6) if seconds is not None and r["requests"] else ""


def table(folder, database):
    postgres = database == "postgres"
    head = "| scenario | prefill | req/s | p50 | p95 | p99 | max | errors | peak RSS MB | server CPU |"
    head += " PostgreSQL CPU |" if postgres else ""
    head += " start ms | idle RSS MB |"
    print(head)
    print("|---" + "|---:" * (head.count("|") - 2) + "|")
    notes = []
    for r in rows(folder, database):
        name = r["scenario"]
        l = r["latency_ms"]
        cells = [name, num(r["prefill"]), num(r["requests_per_second"]), num(l["p50"], 2), num(l["p95"], 2),
                 num(l["p99"], 2), num(l["max"], 2), str(r["errors"]), num(r["peak_rss_mb"], 1),
                 per_request(r["server_cpu_seconds"], r)]
        if postgres:
            cells.append(per_request(r["postgres_cpu_seconds"], r))
        first = r["target_rate"] is None and r.get("server_startup_ms") is not None
        cells.append(num(r["server_startup_ms"]) if first else "")
        cells.append(num(r["server_idle_rss_mb"], 1) if first and r.get("server_idle_rss_mb") else "")
        print("| " + " | ".join(cells) + " |")
        if r["units"] != r["requests"] and r["target_rate"] is None:
            u = r["unit_latency_ms"] or {}
            notes.append(f"{name} (prefill {num(r['prefill'])}): {num(r['units_per_second'])} units/s, "
                         f"p99 per unit {num(u.get('p99', 0), 1)} ms")
        for note in r["notes"]:
            if "backlog" in note or "prefill" in note:
                notes.append(f"{name} (prefill {num(r['prefill'])}): {note}")
    print()
    for n in notes:
        print(f"- {n}")
    print()


if __name__ == "__main__":
    folder = sys.argv[1]
    for db in ("sqlite", "postgres"):
        print(f"### {db}\n")
        table(folder, db)
