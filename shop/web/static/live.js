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
    var chosen = others.querySelector('[data-listing-id="' + listingId + '"]');
    if (!chosen) {
      // Added after this page was loaded: fetch it, then pin it.
      if (!pinned.querySelector('[data-listing-id="' + listingId + '"]')) added(listingId);
      return;
    }
    Array.prototype.forEach.call(pinned.children, function (el) {
      if (el.hasAttribute("data-listing-id")) others.insertBefore(el, others.firstChild);
      else el.hidden = true;
    });
    pinned.appendChild(chosen);
  }

  // Listings added, changed or withdrawn while people watch: fetch the card as the
  // server renders it (price, limit, buy button) and put it in place.
  var cardUrl = root.getAttribute("data-card-url");
  function card(listingId) {
    if (!cardUrl || !window.fetch) return Promise.resolve(null);
    var url = cardUrl.replace(/\/listings\/0\/card$/, "/listings/" + listingId + "/card");
    return fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.status === 200 ? r.text() : null; })
      .then(function (html) {
        if (html === null) return null;
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        return holder.firstElementChild;
      });
  }
  function showNothingPinned() {
    var pinned = document.getElementById("pinned");
    var note = document.getElementById("nothing-pinned");
    if (pinned && note && !pinned.querySelector("[data-listing-id]")) note.hidden = false;
  }
  function added(listingId) {
    if (document.querySelector('[data-listing-id="' + listingId + '"]')) return;
    card(listingId).then(function (el) {
      var list = document.getElementById("others") || document.getElementById("console-listings");
      if (!el || !list || document.querySelector('[data-listing-id="' + listingId + '"]')) return;
      var none = document.getElementById("no-listings");
      if (none) none.remove();
      list.appendChild(el);
      if (root.getAttribute("data-pinned") === String(listingId)) pin(listingId);
    });
  }
  function replaced(listingId) {
    card(listingId).then(function (el) {
      var old = document.querySelector('[data-listing-id="' + listingId + '"]');
      if (!old) { if (el) added(listingId); return; }
      if (el) {
        el.classList.toggle("is-pinned", old.classList.contains("is-pinned"));
        old.replaceWith(el);
      } else {
        old.remove();
        showNothingPinned();
      }
    });
  }
  function withdrawn(listingId) {
    if (document.getElementById("console-listings")) { replaced(listingId); return; }
    each('[data-listing-id="' + listingId + '"]', function (el) { el.remove(); });
    showNothingPinned();
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
  on("listing.added", function (d) { added(d.listing_id); refreshPanel(); });
  on("listing.updated", function (d) { replaced(d.listing_id); });
  on("listing.withdrawn", function (d) { withdrawn(d.listing_id); });
  on("session.started", function () { window.location.reload(); });
  on("session.ended", function () { source.close(); window.location.reload(); });
})();
