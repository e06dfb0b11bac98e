// The merchant's settings page inside Shopify's admin.
//
// With Polaris loaded, the s-* fields replace the plain ones (html.polaris); with App Bridge
// loaded, the form is sent by fetch carrying App Bridge's session token (no cookie needed in
// the admin's frame) and the answer replaces the page. Without either, nothing here
// changes the page: the plain form posts as usual.
(function () {
  "use strict";

  function appBridge() {
    var bridge = window.shopify;
    return bridge && typeof bridge.idToken === "function" ? bridge : null;
  }

  // The plain fields are what the server reads: copy the Polaris fields into them.
  function copyPolarisFields(form) {
    form.querySelectorAll("[data-field]").forEach(function (field) {
      var plain = form.elements.namedItem(field.dataset.field);
      if (!plain) return;
      if (plain.type === "checkbox") plain.checked = Boolean(field.checked);
      else plain.value = field.value == null ? "" : field.value;
    });
  }

  async function send(form, action, bridge) {
    if (document.documentElement.classList.contains("polaris")) copyPolarisFields(form);
    var data = new FormData(form);
    data.set("action", action);
    var token = await bridge.idToken();
    // form.action would be the buttons named "action": read the attribute.
    var response = await fetch(form.getAttribute("action"), {
      method: "POST",
      body: data,
      headers: { Authorization: "Bearer " + token },
    });
    var fresh = new DOMParser()
      .parseFromString(await response.text(), "text/html")
      .getElementById("app");
    var current = document.getElementById("app");
    if (!fresh || !current) {
      document.location.assign(response.url);
      return;
    }
    current.replaceWith(document.adoptNode(fresh));
    history.replaceState(null, "", response.url);
    enhance();
    if (response.ok && action === "save" && bridge.toast) bridge.toast.show("Settings saved");
  }

  // The connector did not answer (or App Bridge gave no token): say so, keep what was typed.
  function failed() {
    var bridge = appBridge();
    if (bridge && bridge.toast) bridge.toast.show("Could not reach the connector", { isError: true });
  }

  function enhance() {
    var form = document.getElementById("settings-form");
    if (!form) return;
    if (window.customElements && customElements.get("s-text-field")) {
      document.documentElement.classList.add("polaris");
    }
    var bridge = appBridge();
    if (bridge) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        send(form, event.submitter ? event.submitter.value : "save", bridge).catch(failed);
      });
    }
    form.querySelectorAll("[data-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        var action = button.dataset.action;
        if (bridge) return send(form, action, bridge).catch(failed);
        // Polaris without App Bridge: post the plain form, as its own button would.
        copyPolarisFields(form);
        form.querySelector('button[name="action"][value="' + action + '"]').click();
      });
    });
  }

  enhance();
})();
