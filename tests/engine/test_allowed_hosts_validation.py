"""A workflow's allowed_hosts entries are checked when it is saved (the egress policy's syntax)."""
from engine.validation import validate_definition


def _d(wf, hosts):
    return wf.definition([wf.node("trigger", "trigger.manual")], [], allowed_hosts=hosts)


def test_entries_the_policy_reads_are_fine(wf):
    assert validate_definition(_d(wf, ["api.example.com", "api.example.com:8443", "*.example.com",
                                       "[::1]:8080", "10.0.0.5"])) == []


def test_urls_and_bad_ports_are_errors_with_their_path(wf):
    problems = validate_definition(_d(wf, ["ok.example.com", "https://api.example.com/v1", "a.example.com:0"]))
    assert [p.path for p in problems] == ["$.settings.allowed_hosts[1]", "$.settings.allowed_hosts[2]"]
    assert "without a scheme or a path" in problems[0].message
    assert "port must be a number from 1 to 65535" in problems[1].message
