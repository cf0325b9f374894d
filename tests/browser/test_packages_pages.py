"""In Chromium: the editor's import help (static/designer/imports.js, with a stand-in for the
Monaco API) and the staff packages page."""
from __future__ import annotations

import pytest

from runtimes.models import AllowedPackage, Runtime
from tests.browser.helpers import PASSWORD, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


FAKE_MONACO = """
const markers = new Map();
const listeners = [];
function model(text) {
  return { value: text, getValue() { return this.value; }, getLanguageId: () => "python",
           isDisposed: () => false, onDidChangeContent(cb) { listeners.push(cb); return { dispose() {} }; },
           getValueInRange(r) { return this.value.split("\\n")[r.startLineNumber - 1].slice(0, r.endColumn - 1); } };
}
const models = [model("import numpy as np, os\\nfrom pandas import DataFrame\\nimport requests  # no network anyway\\n"
                      + "from . import sibling\\n'''\\nimport notreal\\n'''\\nimport xml.etree.ElementTree as ET; import torch.nn")];
const providers = [];  // Monaco asks every provider registered for the language and merges
const monaco = {
  MarkerSeverity: { Warning: 4 },
  languages: { CompletionItemKind: { Module: 8 },
               registerCompletionItemProvider(lang, p) { providers.push(p); return { dispose() {} }; } },
  editor: { getModels: () => models, onDidCreateModel: () => ({ dispose() {} }),
            onWillDisposeModel: () => ({ dispose() {} }),
            setModelMarkers(m, owner, list) { markers.set(owner, list); } },
};
"""


def test_import_help_marks_unknown_imports_and_completes_module_names(page, user, settings, tmp_path):
    site = tmp_path / "layer" / "site"
    site.mkdir(parents=True)
    settings.STEPWELL_RUNTIME_CACHE_DIR = str(tmp_path / "cache")
    Runtime.objects.create(status="ready", active=True, layer_dir=str(site), modules=["numpy", "pandas"],
                           lock=[{"name": "numpy", "version": "2.0.0", "requested": True, "sha256": ""}])
    login(page)
    out = page.evaluate("""async () => {
        const m = await import("/static/designer/imports.js");
        """ + FAKE_MONACO + """
        const help = m.registerImportHelp(monaco);
        await help.ready;
        const list = markers.get(m.MARKER_OWNER);
        const at = (line, column, text) => providers.flatMap(p => p.provideCompletionItems(
            { getValueInRange: () => text }, { lineNumber: line, column }).suggestions.map(s => s.label));
        const imports = m.findImports("import a.b as c, d\\nfrom e.f import g\\n  import h; import i  # j\\n# import k");
        return {
            markers: list.map(x => [x.startLineNumber, x.startColumn, x.endColumn, x.message]),
            severity: list.every(x => x.severity === 4),
            afterImport: at(1, 8, "import ").slice(0, 3),
            afterFrom: at(1, 8, "from pa"),
            afterComma: at(1, 18, "import numpy, os").includes("os"),
            inFromImport: at(1, 22, "from numpy import arr").length,
            imports: imports.map(i => [i.module, i.line, i.startColumn]),
        };
    }""")
    # requests (line 3) and torch (line 8) are unknown; numpy, os, pandas, xml are known; the
    # relative import and the text inside the triple-quoted string are not imports
    assert [m[:3] for m in out["markers"]] == [[3, 8, 16], [8, 44, 52]]
    rid = Runtime.objects.get().pk
    assert out["markers"][0][3].startswith(f"No module named 'requests' in runtime #{rid}: it is not on the package allow-list")
    assert "No module named 'torch'" in out["markers"][1][3]
    assert out["severity"]
    assert out["afterImport"][:2] == ["numpy", "pandas"]
    assert "pandas" in out["afterFrom"] and "os" in out["afterFrom"]
    assert out["afterComma"] is True
    assert out["inFromImport"] == 0
    assert out["imports"] == [["a.b", 1, 8], ["d", 1, 18], ["e.f", 2, 6], ["h", 3, 10], ["i", 3, 20]]
    assert not page.console_errors


def test_the_staff_page_adds_disables_and_shows_builds(page, django_user_model):
    django_user_model.objects.create_user("boss", password=PASSWORD, is_staff=True)
    for name in ("numpy", "pytz"):  # transactional tests flush the default list of the migration
        AllowedPackage.objects.get_or_create(name=name, normalized=name)
    login(page, "boss")
    page.goto("/runtimes/")
    page.wait_for_selector("tr[data-name=numpy]")
    assert not page.console_errors
    assert page.locator("#active-card").inner_text().startswith("Active runtime")
    assert "No runtime is active yet" in page.locator("#active-card").inner_text()

    page.fill("#add-req", "tabulate-extra-pkg>=0.9")
    page.fill("#add-notes", "tables")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("tr[data-name=tabulate-extra-pkg]")
    assert AllowedPackage.objects.filter(normalized="tabulate-extra-pkg", specifier=">=0.9").exists()
    page.wait_for_selector("#rt-table tr[id^=runtime-]")
    assert "queued" in page.locator("#rt-table").inner_text()
    assert page.locator("#build-card").is_visible()

    page.locator("tr[data-name=pytz] .switch").click()
    page.wait_for_function("() => document.querySelector('tr[data-name=pytz]').classList.contains('disabled')")
    assert not AllowedPackage.objects.get(normalized="pytz").enabled
    assert Runtime.objects.count() == 1  # both changes share the queued build

    page.fill("#add-req", "numpy")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector(".toast-error")
    assert "already on the list" in page.locator(".toast-error").first.inner_text()
    assert page.console_errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    page.console_errors.clear()  # that refusal was the point; nothing else may go wrong

    page.fill("#pkg-search", "extra-pkg")  # not "tabul": the default list has tabulate
    page.wait_for_function("() => document.querySelectorAll('#pkg-table tbody tr').length === 1")
    assert page.locator("#pkg-table tbody tr").get_attribute("data-name") == "tabulate-extra-pkg"
    assert not page.console_errors
