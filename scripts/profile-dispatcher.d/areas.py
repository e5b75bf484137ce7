#!/usr/bin/env python3
"""Instructions of a callgrind profile of ferry-dispatcher, by area, per event.

    areas.py CALLGRIND_OUT EVENTS [--top N]

Each function's own instructions (callgrind's exclusive Ir) are charged to the area of its
nearest caller that roots an area (AREAS below, first match wins, matched against the demangled
name), or to "allocation" when the function is mimalloc's. A function reached from callers in
several areas is split among them in proportion to the instructions of each call edge (callgrind
records the inclusive cost of every caller -> callee edge, not whole stacks: the usual gprof
approximation; exact for leaf helpers such as memcpy, approximate deeper down).

--top N also lists the N functions with the most own instructions, with their area split.
"""

import re
import sys
from collections import defaultdict

# (area, pattern). The order is the priority when a name matches several.
AREAS = [
    ("allocation (mimalloc)", r"^(_?mi_|mi_malloc|mi_free|_mi_)|mimalloc"),
    ("metrics (Knative + ferry_dispatcher_*)", r"ferry_dispatcher::metrics::"),
    ("journal (ferry trace entries)", r"ferry_dispatcher::journal::"),
    ("CloudEvents: HTTP -> Event (ingress)", r"ferry_dispatcher::binding::from_http|ferry_dispatcher::binding::from_structured_json|ferry_dispatcher::binding::from_batch"),
    ("CloudEvents: Event -> Kafka record (produce)", r"ferry_dispatcher::binding::to_kafka"),
    ("CloudEvents: Kafka record -> Event (consume)", r"ferry_dispatcher::binding::from_kafka|ferry_dispatcher::egress::consumer::decode"),
    ("CloudEvents: Event -> HTTP (delivery)", r"ferry_dispatcher::binding::to_http"),
    ("produce: rdkafka send + ack (caller side)", r"ferry_dispatcher::log::Log::append|rdkafka::producer::"),
    ("librdkafka threads (broker I/O, produce/fetch, timers)", r"^rd_kafka_broker_thread_main|^rd_kafka_thread_main|^rd_kafka_background_thread_main|^rd_kafka_broker_serve|^rd_kafka_main"),
    ("consume: rdkafka poll + offsets (caller side)", r"ferry_dispatcher::egress::consumer::|rdkafka::consumer::|ferry_dispatcher::egress::tracker::"),
    ("delivery HTTP client (hyper client, redirects; reqwest before)", r"ferry_dispatcher::egress::client::|^reqwest::|<reqwest::|hyper_util::client::|hyper::client::|Dispatcher<hyper::proto::h1::dispatch::Client"),
    ("delivery logic (egress policy, filter, split)", r"ferry_dispatcher::egress::"),
    ("ingress logic (route, body, validation)", r"ferry_dispatcher::ingress::|ferry_dispatcher::gateway::"),
    ("HTTP server (hyper + axum)", r"Dispatcher<hyper::proto::h1::dispatch::Server|hyper::proto::h1::role::Server|hyper_util::server::|hyper::server::|ferry_dispatcher::http_server::|axum::"),
    ("tokio runtime (scheduling, timers, I/O driver)", r"tokio::runtime::|tokio::time::"),
]
COMPILED = [(area, re.compile(p)) for area, p in AREAS]
OTHER = "other (thread start, libc outside the areas above)"


def area_of(name):
    for area, rx in COMPILED:
        if rx.search(name):
            return area
    return None


def parse(path):
    """Own cost per function and (caller, callee) -> inclusive cost of the calls."""
    names = {}
    own = defaultdict(int)
    edges = defaultdict(int)
    fn = None
    callee = None
    pending_call = False
    events_index = 0

    def name_of(field):
        m = re.match(r"\((\d+)\)(?: (.*))?$", field)
        if not m:
            return field
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
                events_index = events.index("Ir")
                continue
            if line.startswith("fn="):
                fn = name_of(line[3:])
                continue
            if line.startswith("cfn="):
                callee = name_of(line[4:])
                continue
            if line.startswith("calls="):
                pending_call = True
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1 + events_index]) if len(parts) > 1 + events_index else 0
                if pending_call:
                    edges[(fn, callee)] += cost
                    pending_call = False
                else:
                    own[fn] += cost
    return own, edges


def attribute(own, edges):
    """Area shares of every function (a dict area -> fraction)."""
    callers = defaultdict(list)
    for (caller, callee), cost in edges.items():
        if caller != callee and cost > 0:
            callers[callee].append((caller, cost))
    fixed = {}
    for fn in set(own) | {c for (_, c) in edges} | {c for (c, _) in edges}:
        a = area_of(fn)
        if a:
            fixed[fn] = {a: 1.0}
    shares = {}
    # Iterate to a fixed point (call graphs of async code have cycles; they converge fast).
    for _ in range(60):
        changed = False
        for fn in own:
            if fn in fixed:
                new = fixed[fn]
            elif not callers[fn]:
                new = {OTHER: 1.0}
            else:
                total = sum(c for _, c in callers[fn])
                new = defaultdict(float)
                for caller, cost in callers[fn]:
                    for a, s in shares.get(caller, fixed.get(caller, {OTHER: 1.0})).items():
                        new[a] += s * cost / total
                new = dict(new)
            if shares.get(fn) != new:
                old = shares.get(fn, {})
                if any(abs(old.get(k, 0) - v) > 1e-6 for k, v in new.items()):
                    changed = True
                shares[fn] = new
        if not changed:
            break
    return shares


def main():
    path, events = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 0
    own, edges = parse(path)
    shares = attribute(own, edges)
    total = sum(own.values())
    by_area = defaultdict(float)
    for fn, cost in own.items():
        for a, s in shares.get(fn, {OTHER: 1.0}).items():
            by_area[a] += cost * s
    print("| area | instructions per event | share |")
    print("|---|---:|---:|")
    for a in sorted(by_area, key=lambda a: -by_area[a]):
        if by_area[a] / total >= 0.0005:
            print(f"| {a} | {by_area[a] / events:,.0f} | {100 * by_area[a] / total:.1f}% |")
    print(f"| **total** | **{total / events:,.0f}** | {events} events, {total:,} Ir |")
    if top:
        print()
        print(f"top {top} functions by own instructions (per event):")
        for fn, cost in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            split = ", ".join(
                f"{a.split(' (')[0].split(':')[0]} {100 * s:.0f}%"
                for a, s in sorted(shares.get(fn, {}).items(), key=lambda kv: -kv[1])[:3]
            )
            print(f"{cost / events:10,.0f}  {fn[:140]}  [{split}]")


if __name__ == "__main__":
    main()
