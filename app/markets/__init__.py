"""Market rules per exchange host: symbols, their status and filters, mark prices, order limits.

``model`` holds the immutable value types (exchanges build them, rules read them), ``store``
the latest rules and mark prices of every host, and ``poller`` keeps them fresh within the
host's weight budget. Import rules: ``model`` imports only ``app.domain``; exchanges may import
``model``; rules read ``model`` through ``app.rules``.
"""
