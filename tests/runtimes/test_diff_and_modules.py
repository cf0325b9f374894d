"""Runtime diffs, the module list for the editor, the default list and layer helpers."""
from __future__ import annotations


import pytest

from runtimes import actions, builder, lib
from runtimes.models import AllowedPackage, Runtime


def entry(name, version, sha="x", requested=True):
    return {"name": name, "version": version, "sha256": sha, "requested": requested, "source": "index"}


def test_diff_lists_added_removed_and_changed():
    old = [entry("numpy", "1.26.4"), entry("pandas", "2.1.0"), entry("six", "1.16.0", requested=False)]
    new = [entry("numpy", "2.0.0"), entry("pandas", "2.1.0"), entry("tabulate", "0.9.0"),
           entry("six", "1.16.0", sha="y", requested=False)]
    d = lib.diff_locks(old, new)
    assert d["added"] == [{"name": "tabulate", "version": "0.9.0", "requested": True}]
    assert d["removed"] == []
    assert d["changed"] == [{"name": "numpy", "from": "1.26.4", "to": "2.0.0", "rebuilt": False},
                            {"name": "six", "from": "1.16.0", "to": "1.16.0", "rebuilt": True}]
    assert d["unchanged"] == 1
    assert lib.diff_locks(new, old)["removed"] == [{"name": "tabulate", "version": "0.9.0", "requested": True}]


@pytest.mark.django_db
def test_the_diff_api_needs_two_ids(staff_api):
    a = Runtime.objects.create(status="ready", lock=[entry("numpy", "1")], modules=["numpy"])
    b = Runtime.objects.create(status="ready", lock=[], modules=[])
    assert staff_api.get("/api/runtimes/diff/?from=1").status_code == 400
    assert staff_api.get(f"/api/runtimes/diff/?from={a.pk}&to=99999").status_code == 404
    body = staff_api.get(f"/api/runtimes/diff/?from={a.pk}&to={b.pk}").json()
    assert body["removed"][0]["name"] == "numpy" and body["modules_removed"] == ["numpy"]


@pytest.mark.django_db
def test_modules_come_from_the_active_runtime(api, layer_env):
    site = layer_env / "cache" / "layers" / "h" / "site"
    site.mkdir(parents=True)
    rt = Runtime.objects.create(status="ready", lock=[entry("pyyaml", "6.0.2")], modules=["_yaml", "yaml"],
                                layer_dir=str(site))
    actions.do_activate(rt)
    body = api.get("/api/runtime/modules/").json()
    assert body["runtime_id"] == rt.pk and body["packages"] == ["_yaml", "yaml"]
    assert body["distributions"] == [{"name": "pyyaml", "version": "6.0.2"}]


@pytest.mark.django_db
def test_activation_needs_a_built_layer(layer_env):
    queued = Runtime.objects.create()
    with pytest.raises(actions.PackageError, match="only a built runtime"):
        actions.do_activate(queued)
    gone = Runtime.objects.create(status="ready", layer_dir=str(layer_env / "missing"))
    with pytest.raises(actions.PackageError, match="no longer on disk"):
        actions.do_activate(gone)


@pytest.mark.django_db
def test_the_default_list_is_created_by_a_migration():
    names = set(AllowedPackage.objects.values_list("normalized", flat=True))
    assert {"numpy", "pandas", "matplotlib", "python-dateutil", "pytz", "openpyxl", "pyyaml", "tabulate",
            "requests", "httpx"} == names
    assert AllowedPackage.objects.get(normalized="pandas").specifier == ">=2.1,<3"


def test_top_level_modules_are_what_python_can_import(tmp_path):
    site = tmp_path
    for d in ("numpy", "numpy.libs", "mpl_toolkits", "numpy-2.0.dist-info", "bin", "__pycache__", "PIL"):
        (site / d).mkdir()
    for f in ("six.py", "_cffi_backend.cpython-311-x86_64-linux-gnu.so", "_speedup.abi3.so",
              "distutils-precedence.pth", "README.txt"):
        (site / f).write_text("")
    assert builder.top_level_modules(site) == ["PIL", "_cffi_backend", "_speedup", "mpl_toolkits", "numpy", "six"]


def test_pip_targets_the_sandbox_interpreter():
    args = builder.pip_target_args()
    assert "--only-binary=:all:" in args and args[args.index("--python-version") + 1] == "3.11"
    plats = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert "manylinux_2_17_x86_64" in plats and "manylinux2014_x86_64" in plats and "manylinux_2_36_x86_64" in plats
    assert not any("aarch64" in p or "manylinux_2_37" in p for p in plats)


def test_the_layer_id_depends_on_the_lock_only():
    a = builder.LockEntry("six", "1.16.0", "aa", "https://x/six.whl", True, "index")
    b = builder.LockEntry("six", "1.16.0", "aa", "file:///mirror/six.whl", True, "index")
    c = builder.LockEntry("six", "1.17.0", "bb", "https://x/six.whl", True, "index")
    assert builder.layer_id_of([a]) == builder.layer_id_of([b]) != builder.layer_id_of([c])
