// Live updates for the storefront and the streamer's console, from the session's
// Server-Sent Events. The pages work without this file; it only keeps them current.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-session]");
  if (!root || !window.EventSource) return;

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function setRemaining(listingId, remaining) {
    each('[data-remaining-for="' + listingId + '"]', function (el) {
      el.textContent = String(remaining);
    });
    each('[data-buy-for="' + listingId + '"]', function (el) { el.hidden = remaining <= 0; });
    each('[data-sold-out-for="' + listingId + '"]', function (el) { el.hidden = remaining > 0; });
  }

  function pin(listingId) {
    root.setAttribute("data-pinned", String(listingId));
    each("[data-listing-id]", function (el) {
      el.classList.toggle("is-pinned", el.getAttribute("data-listing-id") === String(listingId));
    });
    var pinned = document.getElementById("pinned");
    var others = document.getElementById("others");
    if (!pinned || !others) return;
    var card = others.querySelector('[data-listing-id="' + listingId + '"]');
    if (!card) return;
    Array.prototype.forEach.call(pinned.children, function (el) {
      if (el.hasAttribute("data-listing-id")) others.insertBefore(el, others.firstChild);
      else el.hidden = true;
    });
    pinned.appendChild(card);
  }

  var panel = document.getElementById("live-panel");
  var panelUrl = root.getAttribute("data-panel-url");
  var pending = null;
  function refreshPanel() {
    if (!panel || !panelUrl || !window.fetch) return;
    if (pending) clearTimeout(pending);
    pending = setTimeout(function () {
      fetch(panelUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) panel.innerHTML = html; });
    }, 300);
  }

  // Payments change the stats without a stock event: look again now and then too.
  if (panel && panelUrl) setInterval(refreshPanel, 10000);

  var source = new EventSource(root.getAttribute("data-events-url"));
  function on(name, fn) {
    source.addEventListener(name, function (event) { fn(JSON.parse(event.data)); });
  }
  on("listing.stock", function (d) { setRemaining(d.listing_id, d.remaining); refreshPanel(); });
  on("listing.sold_out", function (d) { setRemaining(d.listing_id, 0); });
  on("listing.pinned", function (d) { pin(d.listing_id); });
  on("session.started", function () { window.location.reload(); });
  on("session.ended", function () { source.close(); window.location.reload(); });
})();
