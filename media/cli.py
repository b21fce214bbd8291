"""``shanhuo media …`` commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from media import service
from media.tasks import render
from shop.db import db

media = click.Group("media", help="Stored images and their renditions.")


@media.command("rebuild")
@click.option("--id", "media_ids", type=int, multiple=True, help="Only these media (repeatable).")
@with_appcontext
def rebuild(media_ids: tuple[int, ...]) -> None:
    """Rebuild renditions (after their sizes changed) with the ``media.render`` task.

    Runs in this process when no broker is configured, otherwise queues the tasks.
    """
    ids = list(media_ids) or service.all_media_ids(db.session)
    db.session.rollback()  # end the read; each task runs its own transaction
    for media_id in ids:
        render.delay(media_id)
    click.echo(f"media.render sent for {len(ids)} image(s)")


def register_commands(app: Flask) -> None:
    app.cli.add_command(media)
