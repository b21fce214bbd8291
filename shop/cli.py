"""The ``shanhuo`` command: Flask's CLI over the app, plus users, demo data and events.

``shanhuo run`` (Flask's, plus the beat schedule when no broker is configured),
``shanhuo db upgrade`` (Flask-Migrate), ``shanhuo users create``, ``shanhuo seed-demo``,
``shanhuo events failed`` and ``shanhuo events retry ID``.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, ScriptInfo, get_debug_flag, run_command, with_appcontext
from werkzeug.serving import is_running_from_reloader

from shop.accounts import service as accounts
from shop.accounts.models import Role
from shop.core import events as domain_events
from shop.core.beat import start_embedded_beat
from shop.db import db
from shop.errors import DomainError
from shop.i18n import _l


def _create_app() -> Flask:
    from shop.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True)
def main() -> None:
    """Shanhuo (山货): live-stream selling of mountain produce."""


@click.pass_context
def _run_with_beat(ctx: click.Context, **options: Any) -> None:
    # With the reloader, the first process only watches files and restarts the second,
    # which serves: the schedule runs in that one (and in the only one without it).
    reload = options["reload"] if options["reload"] is not None else get_debug_flag()
    if not reload or is_running_from_reloader():
        start_embedded_beat(ctx.ensure_object(ScriptInfo).load_app())
    ctx.invoke(run_command, **options)


main.add_command(
    click.Command(
        "run",
        callback=_run_with_beat,
        params=run_command.params,
        help=f"{run_command.help}\n\nWithout CELERY_BROKER_URL, also runs the beat schedule.",
        short_help=run_command.short_help,
    )
)


users = click.Group("users", help="Manage users.")


@users.command("create")
@click.option("--email", required=True)
@click.option("--password", help="The password (or use --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--display-name", default=None)
@click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice([r.value for r in Role])
)
@with_appcontext
def create_user(
    email: str,
    password: str | None,
    password_stdin: bool,
    display_name: str | None,
    roles: tuple[str, ...],
) -> None:
    """Create a user with the given roles (the first admin comes from here)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.UsageError(_l("Give --password or --password-stdin."))
    try:
        user = accounts.create_user(
            db.session,
            email=email,
            password=password,
            display_name=display_name or email.split("@")[0],
            roles=roles,
            scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
        )
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.detail) from None
    click.echo(f"created user {user.id} <{user.email}> roles={','.join(user.roles)}")


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Create the demo data set (idempotent: running it again adds nothing)."""
    from shop.app import demo_seeders

    for seeder in demo_seeders():
        for line in seeder(db.session):
            click.echo(line)
        db.session.commit()


events = click.Group("events", help="Domain events that kept failing (the outbox).")


@events.command("failed")
@click.option("--limit", default=100, show_default=True)
@with_appcontext
def events_failed(limit: int) -> None:
    """List the dead events (newest first) and the outbox's counts."""
    counts = domain_events.outbox_counts(db.session)
    click.echo(" ".join(f"{state}={count}" for state, count in counts.items()))
    for row in domain_events.dead_events(db.session, limit=limit):
        click.echo(
            f"{row.id}\t{row.event}\t{row.handler}\t{row.payload}\tattempts={row.attempts}"
            f"\tsince {row.created_at:%Y-%m-%d %H:%M:%S}Z\t{row.last_error}"
        )
    db.session.rollback()


@events.command("retry")
@click.argument("outbox_id", type=int)
@with_appcontext
def events_retry(outbox_id: int) -> None:
    """Give a dead event a new round of attempts (its handler runs again now)."""
    try:
        domain_events.retry_dead(db.session, outbox_id)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.detail) from None
    click.echo(f"event {outbox_id} sent again")


def register_commands(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(seed_demo)
    app.cli.add_command(events)
