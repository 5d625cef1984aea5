// poprules checkout component (docs/checkout_component.md). Served by every PoP at
// /sdk/poprules.js as a plain ES module: no framework, no build step.
//
//   <script type="module" src="https://pop.example.com/sdk/poprules.js"></script>
//   <poprules-quote></poprules-quote>
//   <script type="module">
//     document.querySelector("poprules-quote").cart = {lines: [{sku: "TEE-01", qty: 2}]};
//   </script>
//
// The element quotes its cart at the PoP it was loaded from (attribute `pop` overrides) each
// time the cart changes (debounced; a stale request is cancelled), and shows what the PoP
// answered: never an amount of its own making. Text only: nothing from an answer is parsed as
// HTML. Themed by CSS custom properties (--poprules-*), parts named for ::part().

const HERE = new URL(import.meta.url);
const DEBOUNCE_MS = 200;
const RETRY_MS = 5000;
const STATUS_TEXT = {
  inactive: "not active right now",
  coupon_required: "needs a coupon code",
  not_eligible: "its condition is not met",
  no_items: "no item in your cart qualifies",
  superseded: "another offer gives you more",
};
const COUPON_TEXT = {
  unknown: "We don't know this code.",
  expired: "This code has expired.",
  spent: "This code has already been used.",
};

/** A thin client of a PoP's HTTP API (docs/pop_api.md). */
export class PopClient {
  constructor(base = HERE.origin, {customerToken = null} = {}) {
    this.base = String(base).replace(/\/$/, "");
    this.customerToken = customerToken;
  }

  async call(path, body, {signal} = {}) {
    const headers = {"Content-Type": "application/json"};
    if (this.customerToken) headers["X-Poprules-Customer"] = this.customerToken;
    const response = await fetch(this.base + path, {
      method: body === undefined ? "GET" : "POST", headers, signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = null;
    try { answer = await response.json(); } catch (_) { /* not JSON: answered below */ }
    if (!response.ok) {
      const error = new Error(answer && answer.error ? answer.error.message
                                                     : `the PoP answered ${response.status}`);
      error.status = response.status;
      error.field = answer && answer.error ? answer.error.field : null;
      throw error;
    }
    return answer;
  }

  quote(cart, options) { return this.call("/v1/quote", cart, options); }
  validate(cart, code, options) {
    return this.call("/v1/coupons/validate", {...withoutCoupons(cart), code}, options);
  }
  checkout(cart, {claim = false} = {}) {
    return this.call("/v1/checkout", claim ? {...cart, claim: true} : cart);
  }
  storefront() { return this.call("/v1/storefront"); }
  claimCode(token) { return this.call("/v1/claims/qr", {claim_token: token}); }
}

function withoutCoupons(cart) {
  const copy = {...cart};
  delete copy.coupons;
  return copy;
}

/** Minor units as the release's currency, in the page's language. */
export function money(minor, currency, locale = undefined) {
  const format = new Intl.NumberFormat(locale, {style: "currency", currency});
  const places = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** places);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const STYLE = `
:host { display: block; font: var(--poprules-font, inherit); color: var(--poprules-text, #1d1d1f);
  --accent: var(--poprules-accent, #0a6c3f); --muted: var(--poprules-muted, #5c5c66);
  --surface: var(--poprules-surface, #fff); --border: var(--poprules-border, #d9d9de);
  --warn: var(--poprules-warning, #8a4b00); --radius: var(--poprules-radius, 10px); }
* { box-sizing: border-box; }
.box > div:empty { display: none; }
.box { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius);
  padding: 1rem; display: grid; gap: .9rem; }
.stale { background: #fff4e0; color: var(--warn); border: 1px solid #f0c27a; border-radius: 6px;
  padding: .5rem .75rem; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .75rem; }
.figure { border: 1px solid var(--border); border-radius: 8px; padding: .6rem .75rem; }
.figure .label { color: var(--muted); font-size: .85rem; }
.figure .amount { font-size: 1.5rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.figure.cashback .amount { color: var(--accent); }
.figure .note { font-size: .8rem; color: var(--muted); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
td { padding: .2rem 0; } td:last-child { text-align: right; white-space: nowrap; }
tr.total td { border-top: 1px solid var(--border); font-weight: 650; padding-top: .4rem; }
fieldset { border: 1px solid var(--border); border-radius: 8px; margin: 0; padding: .5rem .75rem; }
legend { padding: 0 .3rem; font-size: .9rem; }
fieldset label { display: inline-flex; gap: .35rem; align-items: center; margin-right: 1rem; }
.nudge { background: #eef8f1; border-left: 4px solid var(--accent); padding: .5rem .75rem; }
form.coupon { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
form.coupon label { flex: 1 0 100%; font-size: .9rem; }
form.coupon input { flex: 1 1 8rem; min-width: 0; }
input, button { font: inherit; padding: .45rem .6rem; border-radius: 6px; border: 1px solid var(--border); }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button:focus-visible, input:focus-visible, summary:focus-visible { outline: 3px solid #7ab8ff; outline-offset: 2px; }
.message { font-size: .9rem; } .message.bad { color: #a4000f; } .message.good { color: var(--accent); }
details summary { cursor: pointer; } details li { margin: .2rem 0; }
.muted { color: var(--muted); font-size: .85rem; }
.claim img { width: 11rem; height: 11rem; image-rendering: pixelated; }
`;

/** `<poprules-quote>`: the checkout's prices, cashback, nudges, coupon entry and "why". */
export class PoprulesQuote extends HTMLElement {
  static get observedAttributes() { return ["pop", "customer-token"]; }

  constructor() {
    super();
    this._cart = null;
    this._quote = null;
    this._stale = false;
    this._timer = null;
    this._retry = null;
    this._inflight = null;
    this._couponMessage = null;
    this._lastCode = null;
    this._parts = null;
    this._claim = null;
    this._storefront = null;
    this.attachShadow({mode: "open"});
  }

  connectedCallback() {
    this._client = new PopClient(this.getAttribute("pop") || HERE.origin,
                                 {customerToken: this.getAttribute("customer-token")});
    this._client.storefront().then((front) => { this._storefront = front; this._render(); },
                                   () => {});
    // A cart set before this module defined the element sits on the instance: adopt it.
    if (Object.prototype.hasOwnProperty.call(this, "cart")) {
      const cart = this.cart;
      delete this.cart;
      this.cart = cart;
    }
    this._render();
  }

  disconnectedCallback() {
    clearTimeout(this._timer);
    clearTimeout(this._retry);
    if (this._inflight) this._inflight.abort();
  }

  attributeChangedCallback() {
    if (this._client) {
      this._client = new PopClient(this.getAttribute("pop") || HERE.origin,
                                   {customerToken: this.getAttribute("customer-token")});
      this._schedule();
    }
  }

  /** The cart: {lines: [{sku, qty}], fulfillment?, channel?, coupons?, prefer?}. */
  get cart() { return this._cart; }
  set cart(value) {
    this._cart = value ? {...value, lines: [...(value.lines || [])]} : null;
    this._claim = null;
    this._schedule();
  }

  /** The last quote shown (signed by the PoP), or null. */
  get quote() { return this._quote; }
  get stale() { return this._stale; }

  _schedule(delay = DEBOUNCE_MS) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.refresh(), delay);
  }

  /** Quote the cart now; a request still running for an older cart is cancelled. */
  async refresh() {
    clearTimeout(this._timer);
    clearTimeout(this._retry);
    if (this._inflight) this._inflight.abort();
    if (!this._client) return null;  // not in a document yet: quoted once it is
    if (!this._cart || !this._cart.lines.length) {
      this._quote = null;
      this._stale = false;
      this._render();
      return null;
    }
    const controller = new AbortController();
    this._inflight = controller;
    this.setAttribute("aria-busy", "true");
    try {
      const answer = await this._client.quote(this._cart, {signal: controller.signal});
      if (this._inflight !== controller) return null;
      this._quote = answer;
      this._stale = false;
      this._error = null;
      this._render();
      this.dispatchEvent(new CustomEvent("poprules-quote", {detail: answer, bubbles: true}));
      return answer;
    } catch (error) {
      if (error.name === "AbortError" || this._inflight !== controller) return null;
      if (error.status && error.status < 500) {
        this._error = error;  // the cart is wrong: say so, keep nothing stale
        this._quote = null;
        this._stale = false;
      } else {
        this._stale = true;   // unreachable or failing: keep the last quote, marked
        this._retry = setTimeout(() => this.refresh(), RETRY_MS);
      }
      this._render();
      this.dispatchEvent(new CustomEvent("poprules-error", {detail: error, bubbles: true}));
      return null;
    } finally {
      if (this._inflight === controller) {
        this._inflight = null;
        this.removeAttribute("aria-busy");
      }
    }
  }

  /** Check a code on this cart; a usable one joins the cart's coupons. */
  async applyCoupon(code) {
    code = String(code || "").trim();
    this._lastCode = code;
    if (!code) {
      this._couponMessage = {good: false, text: "Enter a code."};
      this._render();
      return null;
    }
    let answer;
    try {
      answer = await this._client.validate(this._cart || {lines: []}, code);
    } catch (error) {
      this._couponMessage = {good: false, text: error.status ? error.message
        : "The price service is unreachable; try the code again in a moment."};
      this._render();
      return null;
    }
    this._couponMessage = this._couponText(answer);
    if (answer.status === "valid" || answer.status === "not_applicable") {
      const cart = this._cart || {lines: []};
      this._cart = {...cart, coupons: [...new Set([...(cart.coupons || []), code])]};
      this._schedule(0);
    }
    this._render();
    this.dispatchEvent(new CustomEvent("poprules-coupon", {detail: answer, bubbles: true}));
    return answer;
  }

  _couponText(answer) {
    if (answer.status === "valid") {
      const gives = answer.gives !== undefined && answer.report && answer.report.amount
        ? ` Worth ${this._money(answer.gives)} on this cart.` : "";
      return {good: true, text: `${answer.code} applied: ${this._title(answer.rule)}.${gives}`};
    }
    if (answer.status === "not_applicable") {
      const why = answer.nudge ? `add ${this._money(answer.nudge.missing)} more to use it`
        : (STATUS_TEXT[answer.reason] || "no offer uses it on this cart");
      return {good: false, text: `${answer.code} does not apply to this cart yet: ${why}.`};
    }
    return {good: false, text: `${answer.code}: ${COUPON_TEXT[answer.status] || answer.status}`};
  }

  /** Settle cashback the shopper may choose: "instant" (off this order) or "wallet". */
  choose(lane) {
    if (!this._cart) return;
    this._cart = {...this._cart, prefer: lane};
    this._schedule(0);
  }

  /** Check out the cart at the PoP: the receipt, and a claim code for an anonymous shopper
   * who asks for one (`claim`). */
  async checkout({claim = false} = {}) {
    clearTimeout(this._timer);  // the checkout's own quote is the one to show
    const answer = await this._client.checkout(this._cart, {claim});
    this._quote = answer.quote;
    this._stale = false;
    this._claim = null;
    if (answer.claim_token) {
      this._claim = {token: answer.claim_token, image: null, url: null};
      try {
        const code = await this._client.claimCode(answer.claim_token);
        this._claim = {token: answer.claim_token, image: code.svg, url: code.url};
      } catch (_) { /* the token is still shown as text */ }
    }
    this._render();
    this.dispatchEvent(new CustomEvent("poprules-checkout", {detail: answer, bubbles: true}));
    return answer;
  }

  _money(minor) { return money(minor, this._quote ? this._quote.currency
                                                   : (this._storefront || {}).currency || "EUR"); }

  _title(rule) {
    const known = this._storefront && this._storefront.rules.find((r) => r.id === rule);
    return known && known.title ? known.title : rule;
  }

  _gives(text) {
    // "<reward key> <value>" (spec 7): "cashback 4%", "discount 5.00", "points 10", ...
    const [key, ...rest] = String(text).split(" ");
    const value = rest.join(" ");
    const amount = /^\d+(\.\d+)?$/.test(value) && this._quote
      ? money(Math.round(Number(value) * 10 ** new Intl.NumberFormat(undefined, {
          style: "currency", currency: this._quote.currency}).resolvedOptions()
          .maximumFractionDigits), this._quote.currency)
      : value;
    const words = {cashback: `${amount} cashback`, discount: `${amount} off`,
                   points: `${value} points`, credit: `${amount} credit`};
    return words[key] || text;
  }

  /** The parts that live as long as the element: an update never moves the focus, clears
   * a code being typed or closes the "why" the shopper opened. */
  _skeleton() {
    const input = el("input", {id: "code", name: "code", autocomplete: "off",
                               autocapitalize: "characters", spellcheck: "false"});
    const form = el("form", {class: "coupon", part: "coupon"},
      el("label", {for: "code"}, "Coupon code"), input,
      el("button", {type: "submit", text: "Apply"}));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyCoupon(input.value);
    });
    const parts = {
      stale: el("p", {class: "stale", role: "alert", part: "stale", hidden: true}),
      live: el("div", {"aria-live": "polite"}),
      lanes: el("div", {}),
      coupon: el("div", {role: "status", "aria-live": "polite"}),
      why: el("details", {part: "why", hidden: true},
              el("summary", {text: "Why these prices?"})),
      whyList: el("div", {}),
      claim: el("div", {}),
    };
    parts.why.append(parts.whyList);
    const box = el("section", {class: "box", part: "box", "aria-label": "Your prices"},
                   parts.stale, parts.live, parts.lanes, form, parts.coupon, parts.why,
                   parts.claim);
    this.shadowRoot.replaceChildren(el("style", {text: STYLE}), box);
    return parts;
  }

  _render() {
    const parts = this._parts || (this._parts = this._skeleton());
    const quote = this._quote;
    parts.stale.hidden = !this._stale;
    parts.stale.textContent = !this._stale ? ""
      : quote ? "Prices may be out of date: the price service is unreachable. Showing the "
                + "last quote; retrying."
      : "The price service is unreachable; retrying.";
    const live = [];
    if (this._error && !quote) {
      live.push(el("p", {class: "message bad", role: "alert", text: this._error.message}));
    } else if (!quote && !this._stale) {
      live.push(el("p", {class: "muted", text: "Add items to see your prices."}));
    }
    if (quote) {
      live.push(this._headline(quote), this._totals(quote),
                ...quote.nudges.map((nudge) => this._nudge(nudge)));
    }
    parts.live.replaceChildren(...live);
    const lanes = quote ? this._laneChoice(quote) : null;
    if (!lanes) parts.lanes.replaceChildren();
    else if (!parts.lanes.contains(this.shadowRoot.activeElement)) parts.lanes.replaceChildren(lanes);
    else this._syncLanes(parts.lanes);
    parts.coupon.replaceChildren(...this._couponNotes());
    parts.why.hidden = !quote;
    parts.whyList.replaceChildren(...(quote ? this._why(quote) : []));
    parts.claim.replaceChildren(...(this._claim ? [this._claimBlock()] : []));
  }

  _syncLanes(container) {
    const prefer = (this._cart && this._cart.prefer) || "wallet";
    for (const input of container.querySelectorAll("input[name=lane]")) {
      input.checked = input.value === prefer;
    }
  }

  _headline(quote) {
    const t = quote.totals;
    // When each part of the wallet cashback can be spent: now, or from its vesting day.
    const byDay = new Map();
    for (const entry of quote.wallet.filter((w) => w.to !== "referrer")) {
      const later = Date.parse(entry.vests_at) > Date.parse(quote.at);
      const when = later ? "from " + new Date(entry.vests_at).toLocaleDateString(undefined,
        {year: "numeric", month: "short", day: "numeric", timeZone: "UTC"}) : "now";
      byDay.set(when, (byDay.get(when) || 0) + entry.amount);
    }
    const vestText = [...byDay].map(([when, amount]) => `${this._money(amount)} available `
      + when).join(" · ");
    return el("div", {class: "headline", part: "headline"},
      el("div", {class: "figure pay", part: "payable"},
        el("div", {class: "label", text: "You pay"}),
        el("div", {class: "amount", "data-amount": "payable", text: this._money(t.payable)}),
        t.cashback_instant ? el("div", {class: "note",
          text: `after ${this._money(t.cashback_instant)} cashback now`}) : null),
      el("div", {class: "figure cashback", part: "cashback"},
        el("div", {class: "label", text: "Cashback to your wallet"}),
        el("div", {class: "amount", "data-amount": "cashback_wallet",
                   text: this._money(t.cashback_wallet)}),
        t.cashback_wallet ? el("div", {class: "note", text: vestText}) : null),
      t.points ? el("div", {class: "figure", part: "points"},
        el("div", {class: "label", text: "Points"}),
        el("div", {class: "amount", "data-amount": "points", text: String(t.points)})) : null);
  }

  _totals(quote) {
    const t = quote.totals;
    const rows = [["Subtotal", t.subtotal], ["Discounts", -t.discount], ["Net price", t.net],
                  ["Cashback now", -t.cashback_instant]];
    // A true minus sign, and the amount as the currency writes it.
    const signed = (amount) => (amount < 0 ? "\u2212" : "") + this._money(Math.abs(amount));
    const table = el("table", {part: "totals"}, el("caption", {class: "muted",
      text: "Price breakdown", style: "text-align:left"}));
    for (const [label, amount] of rows) {
      if (!amount && label !== "Net price") continue;
      table.append(el("tr", {}, el("td", {text: label}),
                      el("td", {"data-amount": label, text: signed(amount)})));
    }
    table.append(el("tr", {class: "total"}, el("td", {text: "You pay"}),
                    el("td", {text: this._money(t.payable)})));
    for (const credit of quote.credits) {
      table.append(el("tr", {}, el("td", {text: `Credit: ${this._title(credit.rule)}`}),
                      el("td", {text: this._money(credit.amount)})));
    }
    return table;
  }

  _laneChoice(quote) {
    const choices = (this._storefront ? this._storefront.rules : [])
      .filter((r) => r.lane === "choice").map((r) => r.id);
    const offered = quote.rules.some((r) => choices.includes(r.rule)
      && (r.status === "applied" || r.status === "capped"));
    if (!offered) return null;
    const prefer = (this._cart && this._cart.prefer) || "wallet";
    const option = (value, label) => {
      const input = el("input", {type: "radio", name: "lane", value,
                                 checked: prefer === value});
      input.addEventListener("change", () => this.choose(value));
      return el("label", {}, input, label);
    };
    return el("fieldset", {part: "lanes"},
      el("legend", {text: "How do you want your cashback?"}),
      option("instant", "Redeem now, off this order"),
      option("wallet", "Wallet credit, for later"));
  }

  _nudge(nudge) {
    return el("p", {class: "nudge", part: "nudge", "data-rule": nudge.rule,
      text: `You are ${this._money(nudge.missing)} away from your next reward: `
        + `${this._gives(nudge.gives)} (${this._title(nudge.rule)}).`});
  }

  _couponNotes() {
    const notes = [];
    if (this._couponMessage) {
      notes.push(el("p", {class: `message ${this._couponMessage.good ? "good" : "bad"}`,
                          part: "coupon-message", text: this._couponMessage.text}));
    }
    for (const coupon of (this._quote ? this._quote.coupons : [])) {
      if (coupon.status !== "valid" && coupon.code !== this._lastCode) {
        notes.push(el("p", {class: "message bad", text: this._couponText(coupon).text}));
      }
    }
    return notes;
  }

  _why(quote) {
    const applied = el("ul", {});
    const missed = el("ul", {});
    for (const rule of quote.rules) {
      const title = this._title(rule.rule);
      if (rule.status === "applied" || rule.status === "capped") {
        const capped = rule.status === "capped" ? " (capped)" : "";
        applied.append(el("li", {text: `${title}: ${this._ruleAmount(rule)}${capped}`}));
      } else {
        const reason = rule.status === "not_eligible" && rule.failed
          ? `${STATUS_TEXT.not_eligible} (${rule.failed})` : STATUS_TEXT[rule.status];
        missed.append(el("li", {"data-status": rule.status,
                                text: `${title}: ${reason || rule.status}`}));
      }
    }
    return [el("p", {class: "muted", text: "Applied"}), applied,
            el("p", {class: "muted", text: "Not applied"}), missed];
  }

  _ruleAmount(rule) {
    const kind = this._storefront && this._storefront.rules.find((r) => r.id === rule.rule);
    return kind && kind.kind === "points" ? `${rule.amount} points` : this._money(rule.amount);
  }

  _claimBlock() {
    const claim = this._claim;
    const block = el("div", {class: "claim", part: "claim", role: "group",
                             "aria-label": "Your cashback claim code"},
      el("p", {text: "Scan to claim your cashback in your account. The code works once."}));
    if (claim.image) {
      block.append(el("img", {alt: `Claim code ${claim.token}`,
        src: "data:image/svg+xml;charset=utf-8," + encodeURIComponent(claim.image)}));
    }
    block.append(el("p", {class: "muted", text: claim.url || claim.token}));
    return block;
  }
}

if (!customElements.get("poprules-quote")) {
  customElements.define("poprules-quote", PoprulesQuote);
}
