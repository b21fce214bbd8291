"""The ``shanhuo`` command: Flask's CLI over the app, plus users and demo data.

``shanhuo run``, ``shanhuo db upgrade`` (Flask-Migrate), ``shanhuo users create``,
``shanhuo seed-demo``.
"""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from shop.accounts import service as accounts
from shop.accounts.models import Role
from shop.db import db
from shop.errors import DomainError


def _create_app() -> Flask:
    from shop.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True)
def main() -> None:
    """Shanhuo (山货): live-stream selling of mountain produce."""


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
        raise click.UsageError("Give --password or --password-stdin.")
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


def register_commands(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(seed_demo)
