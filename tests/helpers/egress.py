"""Step code shared by the egress tests: it fetches each of `inputs["urls"]` ({name: url}) and
returns {name: HTTP status}, an error status included (a refusal by the egress proxy is a 403)."""

FETCH_STATUSES = """
import urllib.request, urllib.error
out = {}
for name, url in inputs["urls"].items():
    try:
        out[name] = urllib.request.urlopen(url, timeout=20).status
    except urllib.error.HTTPError as e:
        out[name] = e.code
result = out
"""
