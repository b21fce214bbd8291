"""Random sequences of place / pay / cancel / expire / end-session / restock / edit or
withdraw a listing never lose
or invent a unit: for every product,

    product stock + Σ its listings' remaining + Σ units in its live orders == units ever added

and the per-buyer counters equal the units each buyer holds in live orders.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update

from shop.catalog import service as catalog
from shop.catalog.models import Product
from shop.db import db, utcnow
from shop.errors import DomainError
from shop.live import service as live
from shop.live.models import ListingBuyerUnits, LiveListing
from shop.orders import service
from shop.orders.models import Order, OrderLine
from tests.shop.conftest import SHIPPING

LIVE_STATES = [s.value for s in service.HOLDS_STOCK]


def test_units_are_conserved_through_any_sequence_of_operations(
    db_session, make_user, make_product
):
    buyers = [make_user("buyer").id for _ in range(3)]
    streamer = make_user("streamer").id

    class Shop(RuleBasedStateMachine):
        @initialize()
        def open_shop(self) -> None:
            self.added: dict[int, int] = {}
            self.products = []
            for stock in (12, 6):
                product = make_product(stock=stock)
                self.products.append(product.id)
                self.added[product.id] = stock
            session = live.schedule_session(
                db.session, streamer_id=streamer, title="t", scheduled_at=utcnow()
            )
            self.session_id = session.id
            self.listings = [
                live.add_listing(
                    db.session,
                    session.id,
                    streamer_id=streamer,
                    product_id=self.products[0],
                    flash_price_fen=3990,
                    allotted_qty=8,
                    per_buyer_limit=None,
                ).id,
                live.add_listing(
                    db.session,
                    session.id,
                    streamer_id=streamer,
                    product_id=self.products[1],
                    flash_price_fen=2990,
                    allotted_qty=4,
                    per_buyer_limit=2,
                ).id,
            ]
            live.start_session(db.session, session.id, streamer_id=streamer)
            db.session.commit()
            self.orders: list[int] = []
            self.keys = 0

        def attempt(self, operation: Any) -> Any:
            try:
                result = operation()
            except DomainError:
                db.session.rollback()
                return None
            db.session.commit()
            return result

        @rule(
            buyer=st.integers(0, 2),
            picks=st.lists(
                st.tuples(
                    st.sampled_from(["listing", "product"]), st.integers(0, 1), st.integers(1, 4)
                ),
                min_size=1,
                max_size=3,
                unique_by=lambda p: (p[0], p[1]),
            ),
        )
        def place(self, buyer: int, picks: list[tuple[str, int, int]]) -> None:
            self.keys += 1
            lines = [
                {"listing_id": self.listings[i], "qty": q}
                if kind == "listing"
                else {"product_id": self.products[i], "qty": q}
                for kind, i, q in picks
            ]
            placed = self.attempt(
                lambda: service.place_order(
                    db.session,
                    buyer_id=buyers[buyer],
                    lines=lines,
                    shipping=SHIPPING,
                    idempotency_key=f"sm-{self.session_id}-{self.keys}",
                    payment_timeout_s=900,
                )
            )
            if placed is not None:
                self.orders.append(placed[0].id)

        @rule(data=st.data())
        def pay(self, data: st.DataObject) -> None:
            if self.orders:
                self.attempt(
                    lambda: service.mark_paid(db.session, data.draw(st.sampled_from(self.orders)))
                )

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if self.orders:
                order_id = data.draw(st.sampled_from(self.orders))
                self.attempt(
                    lambda: service.cancel_order(db.session, order_id, refund=lambda o: None)
                )

        @rule(data=st.data())
        def expire(self, data: st.DataObject) -> None:
            if self.orders:
                order_id = data.draw(st.sampled_from(self.orders))
                db.session.execute(
                    update(Order)
                    .where(Order.id == order_id)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
                self.attempt(lambda: service.expire_unpaid(db.session))

        @rule()
        def end_session(self) -> None:
            self.attempt(
                lambda: live.end_session(db.session, self.session_id, streamer_id=streamer)
            )

        @rule(
            which=st.integers(0, 1),
            allotted=st.none() | st.integers(1, 14),
            price=st.none() | st.integers(0, 5000),
        )
        def edit_listing(self, which: int, allotted: int | None, price: int | None) -> None:
            self.attempt(
                lambda: live.update_listing(
                    db.session,
                    self.session_id,
                    self.listings[which],
                    streamer_id=streamer,
                    allotted_qty=allotted,
                    flash_price_fen=price,
                )
            )

        @rule(which=st.integers(0, 1))
        def withdraw_listing(self, which: int) -> None:
            self.attempt(
                lambda: live.withdraw_listing(
                    db.session, self.session_id, self.listings[which], streamer_id=streamer
                )
            )

        @rule(which=st.integers(0, 1), delta=st.integers(1, 5))
        def restock(self, which: int, delta: int) -> None:
            product_id = self.products[which]
            if self.attempt(
                lambda: catalog.adjust_stock(
                    db.session, product_id, delta=delta, reason="harvest", actor_id=None
                )
            ):
                self.added[product_id] += delta

        @invariant()
        def every_unit_is_somewhere(self) -> None:
            for product_id in self.products:
                stock = db.session.scalar(select(Product.stock).where(Product.id == product_id))
                listed = db.session.scalar(
                    select(func.coalesce(func.sum(LiveListing.remaining), 0)).where(
                        LiveListing.product_id == product_id
                    )
                )
                in_orders = db.session.scalar(
                    select(func.coalesce(func.sum(OrderLine.qty), 0))
                    .join(Order, Order.id == OrderLine.order_id)
                    .where(OrderLine.product_id == product_id, Order.state.in_(LIVE_STATES))
                )
                assert stock + listed + in_orders == self.added[product_id]
                assert min(stock, listed) >= 0

        @invariant()
        def per_buyer_counters_match_live_orders(self) -> None:
            limited = self.listings[1]
            counted = dict(
                db.session.execute(
                    select(ListingBuyerUnits.buyer_id, ListingBuyerUnits.units).where(
                        ListingBuyerUnits.listing_id == limited
                    )
                ).all()
            )
            held = dict(
                db.session.execute(
                    select(Order.buyer_id, func.sum(OrderLine.qty))
                    .join(Order, Order.id == OrderLine.order_id)
                    .where(OrderLine.listing_id == limited, Order.state.in_(LIVE_STATES))
                    .group_by(Order.buyer_id)
                ).all()
            )
            assert {b: u for b, u in counted.items() if u} == held

    run_state_machine_as_test(
        Shop,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
