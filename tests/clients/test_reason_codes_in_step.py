"""The client's reason codes are the server's: a bot branching on ``ReasonCode`` sees every
code the guard can send, spelled the same."""

from __future__ import annotations

from enum import StrEnum

import pretrade_guard_client as client

from app import domain

CLIENT_ENUMS = "clients/python/src/pretrade_guard_client/codes.py"


def _missing(server: type[StrEnum], mine: type[StrEnum]) -> str:
    theirs, ours = {c.value for c in server}, {c.value for c in mine}
    return (
        f"the server's {server.__name__} and the client's differ: "
        f"only in the server (app/domain.py): {sorted(theirs - ours)}, "
        f"only in the client: {sorted(ours - theirs)}. Whoever adds or renames a "
        f"server code must add it to the client too: {CLIENT_ENUMS} ({mine.__name__}), "
        "and to the client's CHANGELOG entry"
    )


def test_reason_codes_match_the_server() -> None:
    server = {code.name: code.value for code in domain.ReasonCode}
    mine = {code.name: code.value for code in client.ReasonCode}
    assert mine == server, _missing(domain.ReasonCode, client.ReasonCode)


def test_warning_codes_match_the_server() -> None:
    server = {code.name: code.value for code in domain.WarningCode}
    mine = {code.name: code.value for code in client.WarningCode}
    assert mine == server, _missing(domain.WarningCode, client.WarningCode)


def test_client_side_codes_never_collide_with_server_codes() -> None:
    server = {*domain.ReasonCode, *domain.WarningCode}
    assert not server & set(client.ClientReasonCode), (
        "a server code now has the name of a client-side code; rename the client's"
    )


def test_order_sides_match_the_server() -> None:
    assert {s.value for s in client.OrderSide} == {s.value for s in domain.OrderSide}
