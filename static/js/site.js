// Progressive enhancement only: every page works without JavaScript. No inline scripts
// anywhere (the Content-Security-Policy allows only this file): behaviour hangs on data-*
// attributes.
(function () {
  "use strict";

  // Forms with data-confirm ask first. Once answered "OK", the form carries confirmed=yes so
  // the server does not ask again on its own confirmation page (which is what people
  // without JavaScript get).
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (!msg) { return; }
    if (!window.confirm(msg)) { ev.preventDefault(); return; }
    if (!form.querySelector("input[name=confirmed]")) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "confirmed";
      input.value = "yes";
      form.appendChild(input);
    }
  });

  function ready(fn) {
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", fn); } else { fn(); }
  }

  ready(function () {
    // Registration: the browser's time zone (an IANA name) into the hidden field; the
    // server checks it and falls back to the site default.
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    document.querySelectorAll("input[data-browser-timezone]").forEach(function (input) {
      if (!input.value && zone) { input.value = zone; }
    });

    // The header menu: on narrow screens the links fold behind a "Menu" button. Without
    // JavaScript the button stays hidden and the links are simply shown.
    var nav = document.querySelector("[data-nav]");
    var toggle = nav && nav.querySelector("[data-nav-toggle]");
    if (nav && toggle) {
      nav.classList.add("nav-js");
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        var open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
        nav.classList.toggle("nav-open", open);
      });
    }
  });
})();
