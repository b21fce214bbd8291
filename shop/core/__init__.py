"""The shared core: what every package uses and no domain lives in.

``after_commit`` (callbacks after a COMMIT), ``events`` (domain events and their
outbox), ``live_bus`` and ``sse`` (live events to viewers), ``transaction`` (the
unit of work of tasks and commands), ``sql`` (the dialect-aware INSERT), ``beat``
(the scheduler of the embedded default).
"""
