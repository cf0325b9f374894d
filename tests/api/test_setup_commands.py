"""Settings parse strictly; the first admin is created once and told how to log in."""
import pytest
from django.core.management import call_command

from designer.env import env_bool, env_int


def test_env_bool_rejects_unexpected_values(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ValueError, match="X_FLAG"):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True


def test_env_int_checks_range(monkeypatch):
    monkeypatch.setenv("X_N", "99")
    with pytest.raises(ValueError, match="between"):
        env_int("X_N", 1, 0, 10)


@pytest.mark.django_db
def test_ensure_admin_creates_one_admin(django_user_model, settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("ensure_admin")
    out = capsys.readouterr().out
    assert "username: admin" in out and "password:" in out
    call_command("ensure_admin")
    assert django_user_model.objects.filter(is_superuser=True).count() == 1
    password = (tmp_path / "initial_admin_password.txt").read_text().split("password: ")[1].strip()
    assert django_user_model.objects.get(username="admin").check_password(password)
