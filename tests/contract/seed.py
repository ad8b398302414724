"""Seeds the daemon under test with runs, then writes the schemathesis
configuration that feeds their ids (and the runbook names) to the `{id}` and
`{name}` routes, beside generated values. Run requests need no help: the
document lists each runbook's request with its name and parameters.

Environment: DROVER_URL, DROVER_TOKEN, SCHEMATHESIS_CONFIG (the file to write).
"""

import json
import os
import time
import urllib.request

BASE = os.environ["DROVER_URL"]
TOKEN = os.environ["DROVER_TOKEN"]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{BASE}{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


runbooks = [r["name"] for r in call("GET", "/v1/runbooks")["runbooks"]]
runs = [
    # A dry run that finishes, a real switchover left waiting for an
    # approval, a drill that runs to its end.
    call("POST", "/v1/runs", {"runbook": "evs-switchover", "params": {"group_id": "g0001"}, "dry_run": True}),
    call("POST", "/v1/runs", {"runbook": "evs-switchover", "params": {"group_id": "g0002"}}),
    call("POST", "/v1/runs", {"runbook": "sdrs-drill", "params": {"group_id": "pg0001"}, "dry_run": True}),
]
ids = [r["id"] for r in runs]
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    statuses = [call("GET", f"/v1/runs/{i}")["run"]["status"] for i in ids]
    if statuses[0] != "running" and statuses[2] != "running":
        break
    time.sleep(0.2)
print(f"seeded runs {ids}; runbooks {runbooks}")

quote = json.dumps
with open(os.environ["SCHEMATHESIS_CONFIG"], "w") as config:
    config.write(f"""\
[dictionaries.runs]
values = [{", ".join(map(quote, ids))}]

[dictionaries.runbooks]
values = [{", ".join(map(quote, runbooks))}]

[parameters]
"path.id" = {{ dictionary = "runs", probability = 0.7 }}
"path.name" = {{ dictionary = "runbooks", probability = 0.7 }}
""")
