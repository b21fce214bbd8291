"""Users in the console: create with roles, change roles, deactivate (their tokens and
page sessions end at once)."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for

from console.base import admin_page, bp, load, refuse
from shop.accounts import service as accounts
from shop.accounts.models import Role
from shop.accounts.schemas import AdminUserIn
from shop.db import db
from shop.errors import DomainError
from shop.web import flash_message
from shop.web.auth import page_user

ROLES = [role.value for role in Role]


@bp.route("/admin/users", methods=["GET"])
@admin_page
def users() -> Any:
    """The latest users (``?role=`` for one role), and the form for a new one."""
    role = request.args.get("role")
    return render_template(
        "console/users.html",
        users=accounts.list_users(db.session, role=role if role in ROLES else None),
        roles=ROLES,
        role=role if role in ROLES else "",
    )


@bp.route("/admin/users", methods=["POST"])
@admin_page
def users_create() -> Any:
    form = request.form
    try:
        data = load(
            AdminUserIn(),
            {
                "email": form.get("email", ""),
                "password": form.get("password", ""),
                "display_name": form.get("display_name", ""),
                "roles": form.getlist("roles"),
            },
        )
        user = accounts.create_user(
            db.session,
            email=data["email"],
            password=data["password"],
            display_name=data["display_name"],
            roles=data["roles"],
            scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
        )
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".users"))
    db.session.commit()
    flash_message("user_created", id=user.id)
    return redirect(url_for(".users"))


@bp.route("/admin/users/<int:user_id>/roles", methods=["POST"])
@admin_page
def users_roles(user_id: int) -> Any:
    try:
        accounts.set_roles(
            db.session, user_id, request.form.getlist("roles")[:10], actor_id=page_user().id
        )
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".users"))
    db.session.commit()
    flash_message("roles_saved")
    return redirect(url_for(".users"))


@bp.route("/admin/users/<int:user_id>/deactivate", methods=["POST"])
@admin_page
def users_deactivate(user_id: int) -> Any:
    try:
        accounts.deactivate_user(db.session, user_id, actor_id=page_user().id)
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".users"))
    db.session.commit()
    flash_message("user_deactivated", id=user_id)
    return redirect(url_for(".users"))
