"""The checkout component the Worker serves at /sdk/poprules.js (issue 9 grows it).

A Python string so the Worker holds it in its memory snapshot, with no file to read. A page
includes the script from its PoP and marks where the totals go:

    <div data-poprules-cart='{"lines": [{"sku": "TEE-01", "qty": 2}]}'></div>
    <script src="https://pop.example.com/sdk/poprules.js"></script>

The script quotes each marked cart at the PoP it came from (`data-poprules-customer` may hold
a customer token) and writes the totals as text, never as HTML. `window.poprules` exposes
`quote(cart, token)`, `render(element, quote)` and `mount(element)` for carts that change.
"""

SCRIPT = r"""/* poprules checkout component: quotes a cart at this PoP and shows the totals. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src).origin : "";
  var LABELS = [["subtotal", "Subtotal"], ["discount", "Discount"],
                ["cashback_instant", "Cashback now"], ["payable", "To pay"],
                ["cashback_wallet", "Cashback to your wallet"]];

  function money(minor, currency) {
    var format = new Intl.NumberFormat(undefined, {style: "currency", currency: currency});
    var digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / Math.pow(10, digits));
  }

  function quote(cart, token) {
    var headers = {"Content-Type": "application/json"};
    if (token) headers["X-Poprules-Customer"] = token;
    return fetch(base + "/v1/quote", {method: "POST", headers: headers,
                                      body: JSON.stringify(cart)})
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(answer.error ? answer.error.message : "HTTP " + response.status);
          return answer;
        });
      });
  }

  function render(element, answer) {
    var table = document.createElement("table");
    table.className = "poprules-totals";
    LABELS.forEach(function (pair) {
      var amount = answer.totals[pair[0]];
      if (!amount && pair[0] !== "payable") return;
      var row = table.insertRow();
      row.insertCell().textContent = pair[1];
      row.insertCell().textContent = money(amount, answer.currency);
    });
    element.replaceChildren(table);
  }

  function mount(element) {
    var cart = JSON.parse(element.getAttribute("data-poprules-cart"));
    return quote(cart, element.getAttribute("data-poprules-customer")).then(
      function (answer) { render(element, answer); return answer; },
      function (error) { element.textContent = error.message; });
  }

  window.poprules = {quote: quote, render: render, mount: mount};
  Array.prototype.forEach.call(document.querySelectorAll("[data-poprules-cart]"), mount);
})();
"""
