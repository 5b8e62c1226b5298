#!/usr/bin/env python3
"""After a demo run: the dashboard's API, served over that data directory, shows
the live campaign — calls, a funnel by script node, intents x nodes, KPIs.
Usage: smoke-dashboard.py http://127.0.0.1:PORT"""
import json, sys, time, urllib.request

base = sys.argv[1].rstrip("/")

def get(path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)

for _ in range(100):
    try:
        get("/api/me")
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("dashboard did not come up at " + base)

calls = get("/api/calls?limit=500")
items = calls["items"] if isinstance(calls, dict) else calls
assert len(items) > 50, f"too few stored calls: {len(items)}"
funnel = get("/api/reports/funnel")
steps = funnel["steps"]
assert steps and steps[0]["entered"] > 0, funnel
intents = get("/api/reports/intents")
assert json.dumps(intents).count("affirm") > 0, intents
kpis = get("/api/kpis")
messages = get("/api/messages/report")
assert "outgoing" in messages and "replies" in messages, messages
print(f"dashboard smoke: {len(items)} calls, funnel {[(s['state'], s['entered']) for s in steps[:4]]}...,"
      f" largest drop {funnel.get('largest_drop')}")
