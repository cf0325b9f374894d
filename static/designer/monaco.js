// The one place that knows how Monaco is loaded: the AMD build of monaco-editor 0.52.x, served by
// Django's staticfiles under <static>/vendor/monaco/vs. No CDN, no bundler.

let loading = null;

function staticPrefix() {
  const meta = document.querySelector('meta[name="static-prefix"]');
  return new URL(meta ? meta.content : "/static/", location.href).href;
}

// Monaco rejects pending work with a "Canceled" error when an editor is disposed (for example
// when another node is selected); that is expected and not worth a console error.
window.addEventListener("unhandledrejection", (e) => {
  const r = e.reason;
  if (r && (r.name === "Canceled" || r.message === "Canceled")) e.preventDefault();
});

export function loadMonaco() {
  if (loading) return loading;
  const base = staticPrefix() + "vendor/monaco/";
  loading = new Promise((resolve, reject) => {
    // Workers are started from a same-origin data: proxy so they also work behind a CDN-less,
    // cross-origin static host.
    window.MonacoEnvironment = {
      getWorkerUrl() {
        const src = `self.MonacoEnvironment = { baseUrl: ${JSON.stringify(base)} };\n` +
          `importScripts(${JSON.stringify(base + "vs/base/worker/workerMain.js")});`;
        return `data:text/javascript;charset=utf-8,${encodeURIComponent(src)}`;
      },
    };
    const script = document.createElement("script");
    script.src = base + "vs/loader.js";
    script.onerror = () => reject(new Error("Could not load the Monaco loader."));
    script.onload = () => {
      window.require.config({ paths: { vs: base + "vs" } });
      window.require(["vs/editor/editor.main"], () => {
        registerHelpers(window.monaco);
        resolve(window.monaco);
      }, reject);
    };
    document.head.append(script);
  });
  return loading;
}

// Language help shared by every Python editor, registered once: import completion and warnings
// for modules the sandbox does not have (imports.js, fed by /api/runtime/modules/).
function registerHelpers(monaco) {
  import("./imports.js")
    .then((m) => {
      window.stepwell = window.stepwell || {};
      window.stepwell.importHelp = m.registerImportHelp(monaco);
    })
    .catch((err) => console.warn("import help unavailable:", err));
}

// Monaco's theme follows the page's (theme.js sets <html data-theme> and fires "stepwell:theme").
export const monacoTheme = () => (document.documentElement.dataset.theme === "dark" ? "vs-dark" : "vs");
document.addEventListener("stepwell:theme", () => { if (window.monaco) window.monaco.editor.setTheme(monacoTheme()); });

// Creates an editor in `el`. `onChange(value)` is called on every edit. Returns the editor.
export async function createEditor(el, { value = "", language = "python", onChange, onSave, readOnly = false } = {}) {
  const monaco = await loadMonaco();
  const editor = monaco.editor.create(el, {
    value, language, readOnly,
    theme: monacoTheme(),
    automaticLayout: true,
    minimap: { enabled: true, renderCharacters: false, showSlider: "mouseover", maxColumn: 80 },
    fontSize: 13,
    lineNumbersMinChars: 3,
    scrollBeyondLastLine: false,
    tabSize: 4,
    insertSpaces: true,
    renderLineHighlight: "line",
    fixedOverflowWidgets: true,
    padding: { top: 8, bottom: 8 },
    scrollbar: { verticalScrollbarSize: 10, horizontalScrollbarSize: 10 },
  });
  if (onChange) editor.onDidChangeModelContent(() => onChange(editor.getValue()));
  if (onSave) editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyS, () => onSave());
  return editor;
}

// Replace the text without losing undo history or cursor when it actually differs.
export function setValue(editor, value) {
  if (editor.getValue() === value) return;
  const model = editor.getModel();
  editor.pushUndoStop();
  editor.executeEdits("stepwell", [{ range: model.getFullModelRange(), text: value }]);
  editor.pushUndoStop();
}
