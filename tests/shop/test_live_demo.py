from __future__ import annotations

from sqlalchemy import func, select

from shop.accounts.demo import seed_demo as seed_accounts
from shop.catalog import service as catalog
from shop.db import db
from shop.live.demo import seed_demo
from shop.live.models import LiveSession


def test_the_demo_session_is_seeded_once_with_its_allotments_moved(app, db_session):
    seed_accounts(db.session)
    seed_demo(db.session)
    seed_demo(db.session)
    db.session.commit()
    sessions = db.session.scalars(select(LiveSession)).all()
    demo = [s for s in sessions if s.title.startswith("香信谷")]
    assert len(demo) == 1
    assert demo[0].state == "scheduled"
    assert [(listing.allotted_qty, listing.remaining) for listing in demo[0].listings] == [
        (100, 100),
        (60, 60),
        (40, 40),
    ]
    shiitake = catalog.get_product_by_sku(db.session, "QG-SHIITAKE-500")
    assert shiitake.stock == 200 and shiitake.packing_rate_fen == 60
    # the demo streamer sells their own workshop's goods
    assert shiitake.owner_id == demo[0].streamer_id
    assert catalog.get_product_by_sku(db.session, "ZK-POMELO-5KG").unit_weight_g == 5000
    count = db.session.scalar(select(func.count()).select_from(LiveSession))
    assert count == len(sessions)
