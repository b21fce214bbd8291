"""Run localstripe (a local fake Stripe server from PyPI) for the test suite.

``python -m tests.support.localstripe_server --port N`` serves localstripe on
127.0.0.1 only, with three things real Stripe has and localstripe lacks:

- ``Idempotency-Key``: a POST repeated with the same key (and path) gets the first
  answer again — success or error, as Stripe does for 24 hours — without doing the
  work twice; ``POST /_config/test/idempotency/expire`` forgets the keys (a day passed);
- Connect transfers: ``POST /v1/transfers``, ``GET /v1/transfers/{id}``; a test can make
  the next ones fail with ``POST /_config/test/transfers/fail`` ``{"count", "message"}``;
- ``automatic_payment_methods`` on a PaymentIntent (accepted; cards only);
- the Payment Element: ``GET /js.stripe.com/v3/`` serves localstripe's Stripe.js with
  ``elements({clientSecret}).create("payment")`` (localstripe's card fields) and
  ``confirmPayment``, which posts the card to ``POST /_config/test/payment_intents/{id}/
  confirm``: a card PaymentMethod, then localstripe's own confirm and charge (and so its
  ``payment_intent.succeeded`` webhook to the URL registered at ``/_config/webhooks/…``);
- ``GET /_config/test/requests``: the method, path and idempotency key of every POST seen,
  so tests can check which keys our code sent.

Nothing is written to disk (localstripe would otherwise pickle its store to /tmp).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]

_intent_init = resources.PaymentIntent.__init__


def _intent_with_automatic_methods(self: Any, *args: Any, **kwargs: Any) -> None:
    # Real Stripe takes automatic_payment_methods (the Payment Element's methods);
    # localstripe refuses any parameter it does not know, and only has cards anyway.
    kwargs.pop("automatic_payment_methods", None)
    _intent_init(self, *args, **kwargs)


resources.PaymentIntent.__init__ = _intent_with_automatic_methods  # type: ignore[method-assign]

_idempotent: dict[tuple[str, str], tuple[int, bytes]] = {}
_seen: list[dict[str, Any]] = []
_failures: dict[str, Any] = {"count": 0, "message": "Insufficient funds in platform balance."}
_transfers: dict[str, dict[str, Any]] = {}


@web.middleware
async def idempotency(request: web.Request, handler: Any) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if request.method == "POST" and not request.path.startswith("/_config/"):
        _seen.append({"method": "POST", "path": request.path, "idempotency_key": key})
    if request.method != "POST" or not key:
        return await handler(request)
    cache_key = (request.path, key)
    if cache_key in _idempotent:
        status, body = _idempotent[cache_key]
        return web.Response(status=status, body=body, content_type="application/json")
    response = await handler(request)
    if isinstance(response, web.Response) and response.body is not None:
        _idempotent[cache_key] = (response.status, bytes(response.body))  # type: ignore[arg-type]
    return response


async def create_transfer(request: web.Request) -> web.Response:
    data = server.unflatten_data(await request.post())
    try:
        amount = int(data["amount"])
        currency = str(data["currency"])
        destination = str(data["destination"])
    except (KeyError, ValueError):
        raise UserError(400, "Missing or invalid amount, currency or destination") from None
    if amount <= 0 or not destination.startswith("acct_"):
        raise UserError(400, "Invalid amount or destination")
    if _failures["count"] > 0:
        _failures["count"] -= 1
        return web.json_response(  # Stripe's error shape; replayed for the same key
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "balance_insufficient",
                    "message": _failures["message"],
                }
            },
            status=400,
        )
    transfer = {
        "id": "tr_" + resources.random_id(14),
        "object": "transfer",
        "amount": amount,
        "currency": currency,
        "destination": destination,
        "transfer_group": data.get("transfer_group"),
        "metadata": data.get("metadata") or {},
        "created": int(time.time()),
        "reversed": False,
    }
    _transfers[transfer["id"]] = transfer
    return web.json_response(transfer)


async def get_transfer(request: web.Request) -> web.Response:
    transfer = _transfers.get(request.match_info["id"])
    if transfer is None:
        raise UserError(404, "No such transfer")
    return web.json_response(transfer)


async def fail_transfers(request: web.Request) -> web.Response:
    data = json.loads(await request.text() or "{}")
    _failures["count"] = int(data.get("count", 1))
    _failures["message"] = data.get("message", _failures["message"])
    return web.json_response(_failures)


async def expire_idempotency_keys(request: web.Request) -> web.Response:
    _idempotent.clear()
    return web.json_response({})


async def seen_requests(request: web.Request) -> web.Response:
    return web.json_response(_seen)


async def reset(request: web.Request) -> web.Response:
    resources.store.clear()
    _idempotent.clear()
    _seen.clear()
    _transfers.clear()
    _failures["count"] = 0
    return web.json_response({})


PAYMENT_ELEMENT_JS = """
// Shanhuo's tests: the Payment Element on top of localstripe's card Element.
(function () {
  const localStripe = Stripe;
  Stripe = (apiKey) => {
    const stripe = localStripe(apiKey);
    const makeElements = stripe.elements;
    stripe.elements = (options) => {
      const elements = makeElements();
      elements._clientSecret = options && options.clientSecret;
      const create = elements.create;
      elements.create = function (type, opts) { return create.call(this, "card", opts); };
      return elements;
    };
    stripe.confirmPayment = async ({ elements }) => {
      const card = elements.getElement("payment");
      const secret = elements._clientSecret;
      const pi = secret.match(/^(pi_\\w+)_secret_/)[1];
      const response = await fetch(
        `${LOCALSTRIPE_BASE_API}/_config/test/payment_intents/${pi}/confirm`,
        { method: "POST", body: JSON.stringify({ client_secret: secret, card: card.value.card }) });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 200 || body.error) {
        return { error: body.error || { message: "failed" } };
      }
      return { paymentIntent: body };
    };
    return stripe;
  };
})();
"""


@web.middleware
async def payment_element_js(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(request)
    if request.path == "/js.stripe.com/v3/" and isinstance(response, web.Response):
        text = (response.text or "") + PAYMENT_ELEMENT_JS
        return web.Response(text=text, content_type="application/javascript")
    return response


async def confirm_payment_intent(request: web.Request) -> web.Response:
    data = json.loads(await request.text() or "{}")
    intent = resources.PaymentIntent._api_retrieve(request.match_info["id"])
    if data.get("client_secret") != intent.client_secret:
        raise UserError(401, "Unauthorized")
    method = resources.PaymentMethod._api_create(type="card", card=data.get("card") or {})
    intent.payment_method = method.id
    intent._confirm(on_failure_now=intent._report_failure)
    return web.json_response(intent._export())


def build_app() -> web.Application:
    app = server.app
    app.middlewares.insert(0, idempotency)
    app.middlewares.insert(0, payment_element_js)
    app.router.add_post("/_config/test/payment_intents/{id}/confirm", confirm_payment_intent)
    app.router.add_post("/v1/transfers", create_transfer)
    app.router.add_get("/v1/transfers/{id}", get_transfer)
    app.router.add_post("/_config/test/transfers/fail", fail_transfers)
    app.router.add_post("/_config/test/idempotency/expire", expire_idempotency_keys)
    app.router.add_get("/_config/test/requests", seen_requests)
    app.router.add_post("/_config/test/reset", reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
