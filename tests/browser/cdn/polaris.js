// A stand-in for Shopify's Polaris web components (cdn.shopify.com/shopifycloud/polaris-1.js)
// in the browser tests: every s-* element the merchant page uses is defined; fields render a
// native control and expose `value` / `checked` as Polaris does; a little CSS in Polaris's
// spirit makes the screenshot readable. No network, no shadow DOM.
(function () {
  "use strict";
  var css = [
    "html body { background: #f1f1f1; font: 14px/1.45 Inter, -apple-system, 'Segoe UI', Roboto, sans-serif; }",
    "html main { background: transparent; box-shadow: none; padding: 0 1rem; }",
    "s-page { display: block; }",
    "s-page::before { content: attr(heading); display: block; font-size: 20px; font-weight: 650; margin: .5rem 0 1rem; }",
    "s-section { display: block; background: #fff; border-radius: 12px; padding: 16px; margin: 0 0 16px;",
    "  box-shadow: 0 1px 0 rgba(26,26,26,.07), inset 0 -1px 0 rgba(0,0,0,.13); }",
    "s-section::before { content: attr(heading); display: block; font-size: 14px; font-weight: 650; margin-bottom: 12px; }",
    "s-banner { display: block; border-radius: 8px; padding: 10px 12px; margin: 0 0 10px; background: #eaf4ff; }",
    "s-banner[tone=success] { background: #cdfee1; } s-banner[tone=warning] { background: #fff1e3; }",
    "s-banner[tone=critical] { background: #fee8eb; border-left: 4px solid #e51c00; }",
    "s-badge { display: inline-block; border-radius: 8px; padding: 0 8px; font-size: 12px; background: #e3e3e3; }",
    "s-badge[tone=success] { background: #affebf; } s-badge[tone=critical] { background: #fedad9; }",
    "s-table { display: table; width: 100%; border-collapse: collapse; margin: 8px 0; }",
    "s-table-header-row, s-table-row { display: table-row; } s-table-body { display: table-row-group; }",
    "s-table-header, s-table-cell { display: table-cell; padding: 6px 8px; border-bottom: 1px solid #ebebeb; }",
    "s-table-header { font-weight: 550; color: #616161; background: #f7f7f7; }",
    "s-text-field, s-password-field, s-select, s-checkbox { display: block; margin: 0 0 12px; }",
    "s-text-field label, s-password-field label, s-select label { display: block; font-weight: 450; margin: 0; }",
    "s-text-field input, s-password-field input, s-select select { display: block; width: 100%;",
    "  box-sizing: border-box; margin-top: 4px; padding: 6px 10px; border: 1px solid #8a8a8a; border-radius: 8px; font: inherit; }",
    "s-checkbox label { font-weight: 400; margin: 0; } s-option { display: none; }",
    ".s-details { color: #616161; font-size: 13px; }",
    "s-button { display: inline-block; padding: 6px 12px; border-radius: 8px; cursor: pointer; background: #fff;",
    "  box-shadow: inset 0 -1px 0 #b5b5b5, 0 0 0 1px #e3e3e3; font-weight: 550; }",
    "s-button[variant=primary] { background: #303030; color: #fff; box-shadow: none; }",
  ].join("\n");
  var style = document.createElement("style");
  style.textContent = css;
  document.head.append(style);

  [
    "s-page", "s-section", "s-banner", "s-badge", "s-option", "s-table", "s-table-header-row",
    "s-table-header", "s-table-body", "s-table-row", "s-table-cell",
  ].forEach(function (name) {
    customElements.define(name, class extends HTMLElement {});
  });

  // The parser connects an element before its children: render once the document is parsed.
  function whenParsed(render) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", render);
    else render();
  }

  class Field extends HTMLElement {
    connectedCallback() {
      var self = this;
      whenParsed(function () {
        if (self.control) return;
        var label = document.createElement("label");
        label.textContent = self.getAttribute("label") || "";
        self.control = self.makeControl();
        label.append(self.control);
        self.append(label);
        if (self.getAttribute("details")) {
          var details = document.createElement("div");
          details.className = "s-details";
          details.textContent = self.getAttribute("details");
          self.append(details);
        }
      });
    }
    makeControl() {
      var input = document.createElement("input");
      input.type = this.localName === "s-password-field" ? "password" : "text";
      input.value = this.getAttribute("value") || "";
      return input;
    }
    get value() {
      return this.control ? this.control.value : this.getAttribute("value") || "";
    }
  }

  class Select extends Field {
    makeControl() {
      var select = document.createElement("select");
      this.querySelectorAll("s-option").forEach(function (option) {
        select.append(new Option(option.textContent.trim(), option.getAttribute("value")));
      });
      select.value = this.getAttribute("value") || "";
      return select;
    }
  }

  class Checkbox extends HTMLElement {
    connectedCallback() {
      var self = this;
      whenParsed(function () {
        if (self.control) return;
        var label = document.createElement("label");
        self.control = document.createElement("input");
        self.control.type = "checkbox";
        self.control.checked = self.hasAttribute("checked");
        label.append(self.control, " " + (self.getAttribute("label") || ""));
        self.append(label);
      });
    }
    get checked() {
      return this.control ? this.control.checked : this.hasAttribute("checked");
    }
  }

  customElements.define("s-text-field", class extends Field {});
  customElements.define("s-password-field", class extends Field {});
  customElements.define("s-select", Select);
  customElements.define("s-checkbox", Checkbox);
  customElements.define("s-button", class extends HTMLElement {
    connectedCallback() {
      this.setAttribute("role", "button");
    }
  });
})();
