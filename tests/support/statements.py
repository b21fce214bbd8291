"""Count what an app's engine sends to the database (the hot paths' budgets)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from shop.db import db


class Sent(list[str]):
    """The first words; ``texts`` has each statement whole."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []


@contextmanager
def statements(app: Any) -> Iterator[Sent]:
    """Every statement the app's engine sends: the first word of each, BEGIN, and END
    for a COMMIT or ROLLBACK (and in ``.texts`` each statement whole)."""
    sent = Sent()

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement.split(None, 1)[0].upper())
        sent.texts.append(statement)

    def sends(conn: Any) -> bool:
        """On an autocommit connection SQLAlchemy's begin and end send nothing."""
        return not conn.connection.driver_connection.autocommit

    def on_begin(conn: Any) -> None:
        if sends(conn):
            sent.append("BEGIN")

    def on_end(conn: Any) -> None:
        if sends(conn):
            sent.append("END")

    engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "begin", on_begin)
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "commit", on_end)
        event.remove(engine, "rollback", on_end)
