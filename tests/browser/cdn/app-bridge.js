// A stand-in for Shopify's App Bridge (cdn.shopify.com/shopifycloud/app-bridge.js) in the
// browser tests: the test serves it with a real session token put in place of __ID_TOKEN__.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="shopify-api-key"]');
  if (!meta || !meta.content) throw new Error("App Bridge needs <meta name=shopify-api-key>");
  window.__toasts = [];
  window.shopify = {
    config: { apiKey: meta.content },
    idToken: function () {
      return Promise.resolve("__ID_TOKEN__");
    },
    toast: {
      show: function (message) {
        window.__toasts.push(message);
      },
    },
  };
})();
