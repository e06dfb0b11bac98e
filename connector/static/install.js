// The first load of an app Shopify installed for us (managed installation): App Bridge's
// session token is sent once, the server exchanges it for the shop's offline token
// (connector/install/token_exchange.py), and the page reloads into the settings.
(async () => {
  const status = document.getElementById("install-status");
  if (!window.shopify || !window.shopify.idToken) {
    status.textContent = "Open the connector from your Shopify admin to finish the install.";
    return;
  }
  try {
    const token = await window.shopify.idToken();
    const answer = await fetch(window.location.href, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (answer.ok) {
      window.location.reload();
      return;
    }
    status.textContent = "The install could not be finished. Reload to try again.";
  } catch (error) {
    status.textContent = "The install could not be finished. Reload to try again.";
  }
})();
