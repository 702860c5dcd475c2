"""Pure decision rules: no I/O, no clock reads, no settings; only ``app.domain`` and stdlib.

``evaluate(intent, state, policy, now)`` is the whole public surface; ``CHECKS`` is the
ordered list of deny checks it runs (exported so callers and tests can see the order).
"""

from app.rules.engine import ADVISORS, CHECKS, Check, evaluate

__all__ = ["ADVISORS", "CHECKS", "Check", "evaluate"]
