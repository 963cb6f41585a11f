"""Turns the JSON lines of scripts/bench into the Markdown table of docs/performance.md."""
import datetime
import json
import os
import platform
import subprocess
import sys


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rustc():
    try:
        return subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "rustc not found"


rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = lambda kind: [r for r in rows if r["bench"] == kind]
cold = {r["function"]: r for r in by("cold_start")}
size = {r["function"]: r for r in by("size")}

print(f"Measured {datetime.date.today()} on {os.cpu_count()} × {cpu_model()}, "
      f"{platform.system()} {platform.release()} ({platform.machine()}), {rustc()}; "
      "release profile (LTO, one codegen unit, stripped, opt-level \"s\", the contracts and serde at 3, the SDK clients at \"z\"), x86_64.")
print()
print("| function | binary MB | zip MB | first poll ms | first response ms | peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|")
for name in sorted(set(cold) | set(size), key=lambda n: (n != "bench-hello", n)):
    s, c = size.get(name, {}), cold.get(name, {})
    fmt = lambda d, k, p: f"{d[k]:.{p}f}" if k in d else "–"
    note = " (error answer)" if c.get("first_answer_was_error") else ""
    print(f"| {name} | {fmt(s, 'binary_mb', 2)} | {fmt(s, 'zip_mb', 2)} | {fmt(c, 'first_poll_ms', 1)} | "
          f"{fmt(c, 'first_response_ms', 1)}{note} | {fmt(c, 'peak_rss_mib', 1)} |")
print()
trust = by("trust_store")
if trust:
    print("| trusting root CAs at start | roots | median ms |")
    print("|---|---:|---:|")
    for r in trust:
        print(f"| {r['how']} | {r['roots']} | {r['median_ms']:.2f} |")
    print()
stages = by("per_message")
if stages:
    print("| per-message stage (1 KB `order.placed`, in-memory ports) | median µs |")
    print("|---|---:|")
    for r in stages:
        print(f"| {r['stage']} | {r['median_us']:.2f} |")
    print()
saga = by("saga")
if saga:
    print("| local stack saga | batching windows | orders | clients | offered /s | confirmed /s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in saga:
        offered = f"{r['rate']:.0f}" if r["rate"] else "max"
        windows = "template's" if r.get("batching_windows", True) else "off"
        batch = f", batch {r['batch_size']}" if r.get("batch_size") else ""
        source = f", {r['source']} orders" if r.get("source", "storefront") != "storefront" else ""
        print(f"| {r['store']}{batch}{source} | {windows} | {r['orders']} | {r['clients']} | {offered} | {r['per_second']:.1f} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
    print()
    same = lambda store: [r for r in saga if r["store"] == store and r["clients"] == 8 and r.get("batch_size") == 10]
    if same("memory") and same("moto"):
        m, a = same("memory")[-1], same("moto")[-1]
        print(f"Local stack in memory vs moto, same load ({m['orders']} orders, 8 clients, batch 10): "
              f"{m['per_second']:.1f} vs {a['per_second']:.2f} confirmed orders/s, "
              f"**{m['per_second'] / a['per_second']:.0f}×**.")
        print()
flash = by("flash")
if flash:
    print("| flash sale: 1 sku, 100 units, 1,000 orders at once (simulated clock) | tried | refused at the door | confirmed | rejected or cancelled | p50 s to final | p99 s to final |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in flash:
        print(f"| {r['source']} | {r['tried']} | {r['refused_at_door']} | {r['confirmed']} | {r['cancelled']} | {r['p50_s']:.0f} | {r['p99_s']:.0f} |")
    print(f"\nConfirmed in all: {sum(r['confirmed'] for r in flash)}; the run took {flash[0]['wall_s']:.1f} s of wall-clock time.")
    print()


def cost_rows(heads, per_orders, title):
    print(f"| {title} | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(heads))
    line = lambda label, f: print(f"| {label} | " + " | ".join(f(p) for p in per_orders) + " |")
    line("Lambda invocations", lambda p: f"{p['lambda_invocations']:.2f}")
    line("records per invocation", lambda p: f"{p['records_per_invocation']:.1f}")
    line("Lambda GB-s (at moto's latency)", lambda p: f"{p['gb_seconds']:.4f}")
    line("API Gateway requests", lambda p: f"{p['http_requests']:.2f}")
    line("SNS publishes (billed)", lambda p: f"{p['sns_requests']:.2f}")
    line("SQS requests (billed)", lambda p: f"{p['sqs_requests']:.2f}")
    line("DynamoDB requests", lambda p: f"{p['dynamodb_requests']:.2f}")
    line("DynamoDB WRU", lambda p: f"{p['wru']:.1f}")
    line("DynamoDB RRU", lambda p: f"{p['rru']:.1f}")
    for k, label in [("lambda_requests", "Lambda requests"), ("lambda_compute", "Lambda compute"),
                     ("http_api", "API Gateway"), ("sns", "SNS"), ("sqs", "SQS"),
                     ("dynamodb_writes", "DynamoDB writes"), ("dynamodb_reads", "DynamoDB reads"),
                     ("total", "**total**")]:
        line(f"$ per million orders: {label}", lambda p, k=k: f"{p['dollars_per_million_orders'][k]:.2f}")


costs = [r for r in by("saga_cost") if r["store"] == "moto"]
if costs:
    cost_rows([f"batch {r['batch_size']}" for r in costs], [r["per_order"] for r in costs],
              "per confirmed order (moto, AWS SDK adapters)")
    print()
    last = costs[-1]
    print(f"By function (batch {last['batch_size']}): invocations, WRU, RRU and requests per order")
    print()
    print("| function | invocations | WRU | RRU | requests |")
    print("|---|---:|---:|---:|---|")
    for name, p in last["by_function"].items():
        reqs = ", ".join(f"{k} {v:.2f}" for k, v in p["requests"].items())
        print(f"| {name} | {p['lambda_invocations']:.2f} | {p['wru']:.1f} | {p['rru']:.1f} | {reqs} |")
    print()
sources = by("source_cost")
if sources:
    cost_rows([r["source"] for r in sources], [r["per_order"] for r in sources],
              f"per confirmed order by source ({sources[0]['orders']} each; moto, simulated clock, template's batch sizes, skus listed on both channels, less an idle stack)")
    print()
    print("By function and source: invocations, WRU, RRU per order")
    print()
    names = sorted({n for r in sources for n in r["by_function"] if "(event source)" not in n})
    print("| function | " + " | ".join(r["source"] for r in sources) + " |")
    print("|---|" + "---|" * len(sources))
    for n in names:
        cells = []
        for r in sources:
            p = r["by_function"].get(n)
            cells.append("" if p is None else f"{p['lambda_invocations']:.2f} / {p['wru']:.1f} / {p['rru']:.1f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print()


# Each goal's figure beside the goal (docs/performance.md, "Goals and where we stand").
goals = []
windowed = [r for r in saga if r.get("batching_windows", True) and r["rate"] == 50]
for r in windowed:
    goals.append((f"p99 POST /orders to order.confirmed, template's windows, 50 orders/s ({r['store']})",
                  "≤ 300 ms", f"{r['p99_ms']:.1f} ms", r["p99_ms"] <= 300))
for r in [r for r in saga if r.get("source", "storefront") != "storefront"]:
    goals.append((f"p99 {r['source']} order to order.confirmed, template's windows, {r['rate']:.0f} orders/s ({r['store']})",
                  "≤ 300 ms", f"{r['p99_ms']:.1f} ms", r["p99_ms"] <= 300))
batch10 = [r for r in by("saga_cost") if r["store"] == "moto" and r["batch_size"] == 10]
if batch10:
    total = batch10[-1]["per_order"]["dollars_per_million_orders"]["total"]
    goals.append(("cost per million confirmed orders (moto usage, batch 10)", "≤ $50", f"${total:.2f}", total <= 50))
e2e = [r for r in stages if r["stage"] == "end_to_end"]
if e2e:
    us = e2e[-1]["median_us"]
    goals.append(("per message, end to end (criterion, as shipped)", "≤ 20 µs", f"{us:.1f} µs", us <= 20))
fns = {n: r for n, r in size.items() if n != "bench-hello"}
if fns:
    big = max(fns.values(), key=lambda r: r["binary_mb"])
    zipped = max(fns.values(), key=lambda r: r["zip_mb"])
    goals.append(("largest function binary", "≤ 8.0 MB", f"{big['binary_mb']:.2f} MB ({big['function']})", big["binary_mb"] <= 8.0))
    goals.append(("largest function zip", "≤ 3.5 MB", f"{zipped['zip_mb']:.2f} MB ({zipped['function']})", zipped["zip_mb"] <= 3.5))
for r in flash:
    goals.append((f"flash sale, {r['source']}: p50 / p99 to a final state (simulated)", "reported",
                  f"{r['p50_s']:.0f} s / {r['p99_s']:.0f} s", True))
if goals:
    print("| goal | target | measured | |")
    print("|---|---|---|---|")
    for what, target, got, met in goals:
        print(f"| {what} | {target} | {got} | {'met' if met else '**not met**'} |")
    print()
