"""``StripeConnectPayouts`` against a loopback server that answers ``POST /v1/transfers`` as
Stripe documents it and records each request exactly as sent (form body and headers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest

from contracts.payouts.providers import StripeConnectPayouts, TransferRefused, TransferRequest


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]
    answers: list[tuple[int, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.seen.append(
            {
                "path": self.path,
                "form": dict(parse_qsl(body)),
                "idempotency_key": self.headers.get("Idempotency-Key"),
                "authorization": self.headers.get("Authorization"),
            }
        )
        status, answer = self.answers.pop(0)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_stripe() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "answers": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_transfer_sends_amount_destination_group_metadata_and_the_same_key_on_retry(
    fake_stripe,
):
    base, handler = fake_stripe
    handler.answers = [
        (
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "balance_insufficient",
                    "message": "Insufficient funds in Stripe account.",
                }
            },
        ),
        (
            200,
            {
                "id": "tr_1Qinggu",
                "object": "transfer",
                "amount": 21_138,
                "currency": "cny",
                "destination": "acct_1QingguWu",
                "transfer_group": "payout-42",
            },
        ),
    ]
    provider = StripeConnectPayouts("sk_test_loopback", base)
    request = TransferRequest(
        payout_id=42, farmer_id=7, amount_fen=21_138, currency="cny", destination="acct_1QingguWu"
    )

    with pytest.raises(TransferRefused, match=r"Insufficient funds in Stripe account\."):
        provider.transfer(request)
    assert provider.transfer(request) == "tr_1Qinggu"

    expected_form = {
        "amount": "21138",
        "currency": "cny",
        "destination": "acct_1QingguWu",
        "transfer_group": "payout-42",
        "metadata[farmer_id]": "7",
        "metadata[payout_id]": "42",
    }
    assert [s["path"] for s in handler.seen] == ["/v1/transfers", "/v1/transfers"]
    assert [s["form"] for s in handler.seen] == [expected_form, expected_form]
    assert [s["idempotency_key"] for s in handler.seen] == ["payout-42", "payout-42"]
    assert handler.seen[0]["authorization"] == "Bearer sk_test_loopback"
