"""Media background work: rebuild a media's renditions (``media.render``)."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from media import service
from media.storage import storage_from_config
from shop.celery_app import MAX_COUNTDOWN_S
from shop.core.transaction import unit_of_work
from shop.errors import NotFound

log = logging.getLogger(__name__)


@shared_task(
    name="media.render",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=MAX_COUNTDOWN_S,
    max_retries=5,
)
def render(media_id: int) -> None:
    """Rebuild the renditions of one media from its stored original. Safe to run twice:
    unchanged sizes give the same bytes, the same keys and no change."""
    try:
        with unit_of_work() as session:
            service.render(session, storage_from_config(current_app.config), media_id)
    except NotFound as missing:
        log.warning("media.render(%s): %s", media_id, missing.detail)
