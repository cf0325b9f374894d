// Light or dark: the choice stored in localStorage ("stepwell.theme") or, without one, the system's
// prefers-color-scheme. A classic script loaded in <head> (before the body paints) sets
// <html data-theme="light|dark">; the top bar's #theme-toggle flips and remembers it. Pages listen
// for the "stepwell:theme" event on document (detail: "light" | "dark"), e.g. monaco.js.
(function () {
  "use strict";
  var KEY = "stepwell.theme";
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try { var v = localStorage.getItem(KEY); return v === "dark" || v === "light" ? v : null; } catch (e) { return null; }
  }
  function wanted() { return stored() || (media && media.matches ? "dark" : "light"); }
  function apply(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    var btn = document.getElementById("theme-toggle");
    if (btn) {
      btn.setAttribute("aria-pressed", String(theme === "dark"));
      btn.title = theme === "dark" ? "Switch to light mode" : "Switch to dark mode";
    }
    document.dispatchEvent(new CustomEvent("stepwell:theme", { detail: theme }));
  }

  apply(wanted());
  if (media && media.addEventListener) media.addEventListener("change", function () { if (!stored()) apply(wanted()); });
  document.addEventListener("DOMContentLoaded", function () {
    var btn = document.getElementById("theme-toggle");
    apply(wanted());
    if (!btn) return;
    btn.addEventListener("click", function () {
      var next = document.documentElement.getAttribute("data-theme") === "dark" ? "light" : "dark";
      try { localStorage.setItem(KEY, next); } catch (e) { /* private mode: this page only */ }
      apply(next);
    });
  });
})();
