"""Shanhuo: the Flask application, accounts, catalog, live sessions, orders and payments."""

from shop.app import create_app

__all__ = ["create_app"]
