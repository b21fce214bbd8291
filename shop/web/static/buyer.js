// The buyer's pages: the total on the buy form, the payment countdown, and paying with
// Stripe's Payment Element. Without this file the forms still work (sandbox, cancel).
(function () {
  "use strict";

  // Buy form: quantity × flash price, before submitting.
  var qty = document.getElementById("qty");
  var total = document.getElementById("buy-total");
  if (qty && total) {
    var price = parseInt(total.getAttribute("data-unit-fen"), 10);
    var show = function () {
      var n = parseInt(qty.value, 10);
      if (!(n > 0)) return;
      var fen = n * price;
      var whole = Math.floor(fen / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
      total.textContent = "¥" + whole + "." + String(fen % 100).padStart(2, "0");
    };
    qty.addEventListener("input", show);
    show();
  }

  // Time left to pay.
  var countdown = document.getElementById("countdown");
  if (countdown) {
    var deadline = Date.parse(countdown.getAttribute("data-expires-at"));
    var tick = function () {
      var left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
      countdown.textContent = "(" + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") + ")";
      if (left === 0) { window.location.reload(); return; }
      setTimeout(tick, 1000);
    };
    tick();
  }

  // Stripe: mount the Payment Element with the order's PaymentIntent, confirm, then
  // wait for the webhook to mark the order paid (the page polls the order's state).
  var form = document.getElementById("stripe-form");
  var order = document.getElementById("order");
  if (!form || !order || !window.Stripe || !window.fetch) return;
  var button = document.getElementById("pay-button");
  var status = document.getElementById("pay-status");
  var failure = document.getElementById("pay-error");
  var stateUrl = order.getAttribute("data-state-url");
  var busy = false;

  function state() {
    return fetch(stateUrl, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) { return body.state; });
  }
  function paid() {
    status.textContent = document.getElementById("pay-paid").textContent;
    failure.hidden = true;
    button.hidden = true;
    setTimeout(function () { window.location.reload(); }, 1200);
  }
  function waitUntilPaid(tries) {
    state().then(function (s) {
      if (s !== "pending_payment") { paid(); return; }
      if (tries > 0) setTimeout(function () { waitUntilPaid(tries - 1); }, 1000);
    });
  }
  function failed() {
    // A refusal may only mean the payment already went through (a double tap):
    // look at the order before saying anything.
    state().then(function (s) {
      if (s !== "pending_payment") { paid(); return; }
      status.textContent = "";
      failure.hidden = false;
      busy = false;
      button.disabled = false;
    });
  }

  var stripe = window.Stripe(form.getAttribute("data-key"));
  var elements = null;
  fetch(form.getAttribute("data-payment-url"), {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": form.getAttribute("data-csrf") },
  })
    .then(function (r) { return r.json(); })
    .then(function (body) {
      if (!body.client_secret) { if (body.state !== "pending_payment") paid(); return; }
      elements = stripe.elements({ clientSecret: body.client_secret });
      elements.create("payment").mount("#payment-element");
    });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy || !elements) return;
    busy = true;
    button.disabled = true;
    failure.hidden = true;
    status.textContent = document.getElementById("pay-paying").textContent;
    stripe
      .confirmPayment({
        elements: elements,
        redirect: "if_required",
        confirmParams: { return_url: window.location.href },
      })
      .then(function (result) {
        if (result.error) failed();
        else waitUntilPaid(60);
      }, failed);
  });
})();
