"""Fuzzing the REST API from its own OpenAPI schema (schemathesis), as a normal user and as staff.

Every operation of `/api/schema/` is called with inputs generated from the schema (a bounded
number of examples per operation, derandomized so a failure reproduces), through the real Django
application in this process and the test database. The checks: no answer is a 5xx, and every
answer with a documented status matches the schema of that status (so the schema cannot lie).
"""
from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

EXAMPLES_PER_OPERATION = 8
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _operations() -> dict:
    """The schema's operations by label ("GET /api/workflows/{id}/"), read from the real app."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    return {op.label: op for op in (r.ok() for r in schema.get_all_operations())}


OPERATIONS = _operations()


@pytest.fixture
def tokens(django_user_model, definition, settings_throttle_off):
    """A normal user and a staff user, each with a token and one workflow of their own."""
    from designer.actions import do_create_workflow

    user = django_user_model.objects.create_user("fuzz-user", password="pw-fuzz-123")
    staff = django_user_model.objects.create_user("fuzz-staff", password="pw-fuzz-123", is_staff=True)
    for u in (user, staff):
        do_create_workflow(u, f"{u.username}'s", definition=definition)
    return {"user": Token.objects.create(user=user).key, "staff": Token.objects.create(user=staff).key}


@pytest.fixture(autouse=True)
def keep_test_connection():
    """The WSGI app's request signals close "old" database connections, which on PostgreSQL would
    close the test's own connection (inside its transaction); Django's test client unhooks them
    the same way for the requests it makes."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def settings_throttle_off(settings):
    """Throttling is tested on its own; here it would only hide what the fuzzer reaches. DRF fixes
    a view's throttle classes at import, so the rate (read at each request) is what can change."""
    settings.STEPWELL_API_RATE = "1000000/min"


FUZZ = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("who", ["user", "staff"])
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_answers_without_5xx_and_as_documented(label, who, tokens):
    headers = {"Authorization": f"Token {tokens[who]}"}

    @FUZZ
    @given(case=OPERATIONS[label].as_strategy())
    def fuzz(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
