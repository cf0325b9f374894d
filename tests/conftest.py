"""Fixtures shared by every test folder."""
import copy

import pytest
from rest_framework.test import APIClient

from engine.validation import empty_definition


@pytest.fixture
def definition():
    """A valid two-step definition: manual trigger → Python step."""
    d = copy.deepcopy(empty_definition())
    d["nodes"].append({
        "id": "python_1", "type": "action.python", "name": "Add",
        "parameters": {"code": "result = {'n': 1}", "inputs": {}},
        "position": {"x": 300, "y": 160},
    })
    d["edges"].append({"id": "e1", "source": "trigger", "source_port": "out",
                       "target": "python_1", "target_port": "in"})
    return d


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client
