"""Plausibility bounds on exchange numbers: an answer outside them is malformed, never data.

A broken or hostile exchange can send finite numbers that no real account has
(``availableBalance: 1e400``, ``leverage: 1E+30``, ``markPrice: 1E-30``). Taken as real, each
of them lets an absurd order through, so every amount the guard reads is checked against a
bound, and a value outside it fails the refresh like a missing field does. The bounds are wide
on purpose: they only have to catch the impossible, never a real account.

======================  ==========================================================
what                    accepted
======================  ==========================================================
amounts (balances,      ``|x| <= 10^15`` (a quadrillion units of the margin asset)
margins, PnL, notional,
quantities)
prices (mark, derived   ``10^-12 <= x <= 10^12``
mark)
entry / liquidation /   ``0 <= x <= 10^12`` (0 means "none" on some exchanges)
order prices
leverage                ``1 <= x <=`` the exchange's declared maximum
                        (``Capabilities.max_leverage``; 125 on Binance USD-M)
======================  ==========================================================
"""

from __future__ import annotations

from decimal import Decimal

#: Largest magnitude of any amount (balance, margin, PnL, notional, quantity).
MAX_AMOUNT = Decimal("1e15")
#: Smallest and largest price that can be a decision input (mark price).
MIN_PRICE = Decimal("1e-12")
MAX_PRICE = Decimal("1e12")
#: Leverage is never below 1x.
MIN_LEVERAGE = Decimal(1)
