"""The shipped example imports and, posted a CSV, answers with its duplicates and outliers."""
import json
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "expense-report.json"
CSV = """date,employee,category,amount
2024-01-02,ann,travel,120.00
2024-01-03,bob,meals,35.50
2024-01-03,bob,meals,35.50
2024-01-04,cat,travel,110.00
2024-01-05,dan,office,42.00
2024-01-06,ann,meals,28.00
2024-01-07,eve,travel,4999.00
2024-01-08,bob,office,55.00
"""


def test_it_imports_and_runs_end_to_end(stack):
    import subprocess

    # The process driver runs the host's /usr/bin/python3 (the libvirt guest image has pandas).
    probe = subprocess.run(["/usr/bin/python3", "-c", "import pandas"], capture_output=True)
    assert probe.returncode == 0, ("the process sandbox driver needs pandas on the host: "
                                   "apt-get install python3-pandas (scripts/install-system.sh should)")
    api = stack.api()
    doc = json.loads(EXAMPLE.read_text())
    status, w = api.post("/api/workflows/import/", doc)
    assert status == 201, w
    token = api.get(f"/api/workflows/{w['id']}/hook/")[1]["token"]
    status, body, headers = stack.api(None).call("POST", f"/hooks/{token}/", {"csv": CSV}, raw=True, timeout=90)
    assert status == 200, body
    report = json.loads(body)
    assert headers["X-Report"] == "expense-check"
    assert report["rows"] == 8 and report["total"] == 5425.0
    assert report["duplicate_count"] == 1 and report["outlier_count"] == 1
    assert report["duplicates"] == [{"line": 4, "date": "2024-01-03", "employee": "bob", "category": "meals",
                                     "amount": 35.5}]
    assert [(o["line"], o["employee"], o["amount"]) for o in report["outliers"]] == [(8, "eve", 4999.0)]
    assert report["message"] == "8 lines checked: 1 duplicate(s), 1 outlier(s)"
    run = api.wait(int(headers["X-Stepwell-Run"]))
    analyze = next(s for s in run["steps"] if s["node_id"] == "analyze")
    assert analyze["stdout"].startswith("8 rows, 1 duplicates, 1 outliers\n")
