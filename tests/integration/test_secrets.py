"""Secrets never leave the guard, and every route enforces its token scope.

One guard runs against a simulator whose accounts have long, unmistakable API keys and secrets
(``KEY-MARKER-<uuid>``, ``SECRET-MARKER-<uuid>``): one healthy, one with a wrong secret (-1022),
one with a key the exchange does not know (-2015), one whose exchange fails (5xx, malformed
JSON, dropped connections), and a webhook that cannot be delivered. The simulator runs with its
access log on, which records every signed URL: the real signatures the guard sent.

The leak test calls every route with every token (and some bad requests), then searches the
guard's whole log, every response status, header and body, for any key, secret, signature or
token. The authorization matrix checks each route of ``openapi/openapi.json`` (so new routes
are covered as they are added) against each token scope.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml

from app.openapi_spec import SPEC_PATH
from tests.support.guard import (
    ADMIN_TOKEN,
    BOT_TOKEN,
    READ_TOKEN,
    GuardProcess,
    guard_config,
    wait_until,
)
from tests.support.guard_fixtures import account_entry
from tests.support.processes import SimulatorProcess, free_port
from tests.support.sim_scenarios import HEALTHY

pytestmark = pytest.mark.integration

ACCOUNT = "good"  # the account used to fill ``{account}`` path parameters
WRONG_TOKEN = "wrong-token-0000000000"
TOKENS: dict[str, str | None] = {
    "none": None,
    "wrong": WRONG_TOKEN,
    "decide": BOT_TOKEN,
    "read": READ_TOKEN,
    "admin": ADMIN_TOKEN,
}
#: Scopes each test token holds (see tests/support/guard.py).
SCOPES: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "wrong": frozenset(),
    "decide": frozenset({"decide"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"admin", "read", "decide"}),
}
#: Routes without a token requirement in the spec: public unless the config says otherwise,
#: and then they need the ``read`` scope.
PUBLIC_BY_CONFIG = {"/healthz", "/readyz", "/metrics"}
WHO = {"actor": "authz-test", "reason": "authorization matrix"}


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    #: Scope the route needs: from the spec's 403 description; "read" for public-by-config.
    scope: str
    secured: bool

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def _routes() -> list[Route]:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))  # JSON is YAML
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            secured = bool(operation.get("security"))
            forbidden = operation["responses"].get("403", {}).get("description", "")
            found = re.search(r"`(\w+)` scope", forbidden)
            scope = found.group(1) if found else "read"
            routes.append(Route(method.upper(), path, scope, secured))
    return routes


ROUTES = _routes()


@dataclass(frozen=True)
class Example:
    """A request that passes validation, and the statuses an authorized token may get."""

    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    ok: frozenset[int] = frozenset({200})


EXAMPLES: dict[str, Example] = {
    "GET /can-trade": Example(params={"account": ACCOUNT}),
    "POST /can-trade": Example(json={"account": ACCOUNT}),
    "POST /can-trade/batch": Example(json={"orders": [{"account": ACCOUNT}]}),
    "POST /admin/kill-switches": Example(
        json={
            "scope": "symbol",
            "account": ACCOUNT,
            "symbol": "ZZZUSDT",  # a symbol nobody trades: harmless
            "mode": "HALT",
            "expires_in_s": 60,
            **WHO,
        },
        ok=frozenset({201}),
    ),
    # No switch has this id: authorized callers get the documented 404.
    "DELETE /admin/kill-switches/{switch_id}": Example(params=WHO, ok=frozenset({404})),
    "PATCH /admin/accounts/{account}/limits": Example(
        json={"limits": {"max_order_notional": "1000000"}, **WHO}
    ),
    "PUT /admin/accounts/{account}/limits": Example(json={"limits": {}, **WHO}),
    "DELETE /admin/accounts/{account}/limits": Example(params=WHO),
    "GET /readyz": Example(ok=frozenset({200, 503})),  # 503: some accounts here always fail
}
#: A route without an example (a new one): any answer past authentication will do.
PAST_AUTH = frozenset(range(200, 500)) - {401, 403}


def _url(route: Route) -> str:
    path = route.path.replace("{account}", ACCOUNT)
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: str

    @classmethod
    def of(cls, response: httpx.Response, body: str | None = None) -> Answer:
        return cls(response.status_code, response.headers, response.text if body is None else body)

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        headers = "\n".join(f"{k}: {v}" for k, v in self.headers.multi_items())
        return f"{self.status}\n{headers}\n{self.body}"


class Callers:
    """One HTTP client per token (kept open: building a client costs tens of milliseconds)."""

    def __init__(self, guard: GuardProcess) -> None:
        self._clients = {
            who: httpx.Client(
                base_url=guard.base_url,
                headers={"Authorization": f"Bearer {token}"} if token else {},
                timeout=5,
            )
            for who, token in TOKENS.items()
        }

    def call(self, route: Route, who: str) -> Answer:
        """One request to ``route``; a ``/events`` stream is closed once its headers arrived."""
        client = self._clients[who]
        example = EXAMPLES.get(route.label, Example())
        request = client.build_request(
            route.method, _url(route), params=dict(example.params), json=example.json
        )
        response = client.send(request, stream=True)
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return Answer.of(response, body="")  # endless: the status line is the answer
            response.read()
            return Answer.of(response)
        finally:
            response.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


# --------------------------------------------------------------------------- the guard


@dataclass
class SecretRun:
    guard: GuardProcess
    sim: SimulatorProcess
    #: Everything that must never appear in the guard's output.
    secrets: list[str]
    flaky_key: str
    callers: Callers


def _marker(kind: str) -> str:
    return f"{kind}-MARKER-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretRun]:
    workdir = tmp_path_factory.mktemp("secrets")
    keys = {name: _marker("KEY") for name in ("good", "badsecret", "flaky")}
    secrets = {name: _marker("SECRET") for name in keys}
    scenario = {
        "accounts": [
            {
                "id": f"S-{i}",
                "api_key": keys[name],
                "api_secret": secrets[name],
                "account": {
                    "walletBalance": "1000",
                    "marginBalance": "1000",
                    "availableBalance": "1000",
                },
            }
            for i, name in enumerate(keys)
        ]
    }
    scenario_path = workdir / "scenario.yaml"
    scenario_path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    wrong_secret = _marker("SECRET")
    unknown_key = _marker("KEY")
    webhook_secret = _marker("WEBHOOK-SECRET")
    sim = SimulatorProcess(
        scenario_path, log_path=workdir / "simulator.log", extra_args=["--log-level", "debug"]
    )
    with sim:

        def entry(key: str, secret: str) -> dict[str, Any]:
            return {
                "exchange": "generic-v2",
                "base_url": sim.base_url,
                "api_key": key,
                "api_secret": secret,
            }

        accounts = {
            "good": entry(keys["good"], secrets["good"]),
            "badsecret": entry(keys["badsecret"], wrong_secret),  # -1022
            "unknownkey": entry(unknown_key, secrets["flaky"]),  # -2015
            "flaky": entry(keys["flaky"], secrets["flaky"]),
        }
        config = guard_config(
            accounts,
            port=free_port(),
            extra={
                "webhooks": [
                    {
                        "name": "ops",
                        "url": f"http://127.0.0.1:{free_port()}/hook",  # nobody listens
                        "secret": webhook_secret,
                        "timeout_s": 0.5,
                        "max_attempts": 2,
                        "backoff_base_s": 0.05,
                    }
                ],
                # Frequent keep-alive comments let the leak test's stream reader stop promptly.
                "events": {"sse_keepalive_s": 0.2},
            },
        )
        config["auth"].update(public_health=False, public_metrics=False)
        guard = GuardProcess(config, workdir).start(wait=False)
        try:
            # /healthz needs a token here, so wait for the first refresh through /accounts.
            wait_until(lambda: _answers(guard, "/accounts"), timeout=20, what="guard answering")
            callers = Callers(guard)
            yield SecretRun(
                guard=guard,
                sim=sim,
                secrets=[
                    *keys.values(),
                    *secrets.values(),
                    wrong_secret,
                    unknown_key,
                    webhook_secret,
                    BOT_TOKEN,
                    READ_TOKEN,
                    ADMIN_TOKEN,
                ],
                flaky_key=keys["flaky"],
                callers=callers,
            )
            callers.close()
        finally:
            guard.stop()


def _answers(guard: GuardProcess, path: str) -> bool:
    try:
        response = httpx.get(
            f"{guard.base_url}{path}", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=1
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200


def _last_error_kind(guard: GuardProcess, account: str) -> str | None:
    response = httpx.get(
        f"{guard.base_url}/accounts/{account}",
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
        timeout=5,
    )
    kind: str | None = response.json()["last_error_kind"]
    return kind


class EventTap(threading.Thread):
    """Reads ``/events`` (read scope) until closed; keeps everything it received."""

    def __init__(self, guard: GuardProcess) -> None:
        super().__init__(daemon=True)
        self._guard = guard
        self._closing = threading.Event()
        self._received: list[bytes] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {READ_TOKEN}"}
        with (
            httpx.Client(base_url=self._guard.base_url, headers=headers, timeout=5) as client,
            client.stream("GET", "/events") as response,
        ):
            assert response.status_code == 200
            for chunk in response.iter_bytes():  # keep-alives arrive every 0.2 s
                self._received.append(chunk)
                if self._closing.is_set():
                    return

    def close(self) -> str:
        self._closing.set()
        self.join(timeout=5)
        assert not self.is_alive()
        return b"".join(self._received).decode()


def _wait_for_error(guard: GuardProcess, account: str, kind: str) -> None:
    wait_until(
        lambda: _last_error_kind(guard, account) == kind,
        timeout=10,
        what=f"{account} failing with {kind}",
    )


# --------------------------------------------------------------------------- leak test


def _bad_requests(guard: GuardProcess) -> list[Answer]:
    """Error answers: unknown things, invalid input, a broken body, a wrong method."""
    bot = {"Authorization": f"Bearer {BOT_TOKEN}"}
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    with httpx.Client(base_url=guard.base_url, timeout=5) as client:
        responses = [
            client.get("/can-trade", params={"account": "nobody"}, headers=bot),
            client.get("/can-trade", params={"account": ACCOUNT, "quantity": "-1"}, headers=bot),
            client.post(
                "/can-trade",
                content=b'{"account": "good",',
                headers={**bot, "Content-Type": "application/json"},
            ),
            client.put("/can-trade", headers=bot),
            client.get("/no-such-route", headers=reader),
            client.get("/accounts/nobody", headers=reader),
            client.get("/can-trade", params={"account": ACCOUNT}, headers={"Authorization": "x"}),
            *(client.get(f"/accounts/{name}", headers=reader) for name in _ACCOUNTS),
            *(
                client.get("/can-trade", params={"account": name}, headers=bot)
                for name in _ACCOUNTS
            ),
        ]
    return [Answer.of(response) for response in responses]


_ACCOUNTS = ("good", "badsecret", "unknownkey", "flaky")


def test_no_secret_key_signature_or_token_ever_leaves_the_guard(secret_run: SecretRun) -> None:
    guard, sim = secret_run.guard, secret_run.sim
    _wait_for_error(guard, "badsecret", "auth")
    _wait_for_error(guard, "unknownkey", "auth")
    responses: list[Answer] = []
    events = EventTap(guard)
    events.start()
    # The flaky account's exchange fails in three ways while every route is called.
    for kind, error in (
        ("http_5xx", "server_error"),
        ("malformed_json", "malformed"),
        ("drop_connection", "network"),
    ):
        sim.control.clear_faults()
        sim.control.add_fault(kind, api_key=secret_run.flaky_key)
        _wait_for_error(guard, "flaky", error)
        for route in ROUTES:
            for who in TOKENS:
                responses.append(secret_run.callers.call(route, who))
        responses.extend(_bad_requests(guard))
    sim.control.clear_faults()
    time.sleep(0.5)  # let the webhook worker give up and log it
    stream = events.close()
    assert "event: " in stream  # the status changes of the flaky account were streamed

    # The simulator's access log holds the signed URLs the guard sent: the real signatures.
    signatures = set(re.findall(r"signature=([0-9a-f]{64})", sim.logs()))
    assert len(signatures) > 20
    forbidden = [*secret_run.secrets, *signatures]
    corpus = {"guard log": guard.logs(), "/events stream": stream}
    corpus.update({f"response {i}": str(r) for i, r in enumerate(responses)})
    statuses = {r.status for r in responses}
    assert {200, 401, 403, 404, 405, 422, 503} <= statuses  # successes and errors were seen
    assert 500 not in statuses
    logs = corpus["guard log"]
    assert "-1022" in logs
    assert "-2015" in logs
    assert '"webhook": "ops"' in logs  # ...and so was the webhook that could not deliver
    for where, text in corpus.items():
        for secret in forbidden:
            assert secret not in text, f"{secret[:14]}... found in {where}"
        assert "signature=" not in text, where
        assert not re.search(r"\b[0-9a-f]{64}\b", text), f"a 64-hex token in {where}"
        assert "MARKER" not in text, where


# --------------------------------------------------------------------------- authorization


def _expected(route: Route, who: str) -> frozenset[int]:
    if who in ("none", "wrong"):
        return frozenset({401})
    if route.scope not in SCOPES[who]:
        return frozenset({403})
    example = EXAMPLES.get(route.label)
    return example.ok if example else PAST_AUTH


def test_every_route_is_classified() -> None:
    """Routes without a token in the spec are exactly the public-by-config ones, and the
    scopes the spec documents follow the rule: /admin needs admin, /can-trade needs decide."""
    assert {r.path for r in ROUTES if not r.secured} == PUBLIC_BY_CONFIG
    for route in ROUTES:
        if route.path.startswith("/admin"):
            assert route.scope == "admin", route.label
        elif route.path.startswith("/can-trade"):
            assert route.scope == "decide", route.label
        else:
            assert route.scope == "read", route.label


@pytest.mark.parametrize("who", list(TOKENS))
@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_authorization_matrix(secret_run: SecretRun, route: Route, who: str) -> None:
    """Health and metrics are private in this guard's config: they need ``read`` too."""
    response = secret_run.callers.call(route, who)
    expected = _expected(route, who)
    assert response.status in expected, f"{route.label} as {who}: {response}"
    if response.status in (401, 403):
        error = response.json()["error"]
        assert error["code"] == ("UNAUTHORIZED" if response.status == 401 else "FORBIDDEN")
        assert error["message"]
    if response.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("who", list(TOKENS))
@pytest.mark.parametrize("route", [r for r in ROUTES if not r.secured], ids=lambda r: r.label)
def test_health_and_metrics_are_public_by_default(
    public_guard: Callers, route: Route, who: str
) -> None:
    response = public_guard.call(route, who)
    assert response.status in (200, 503), str(response)


@pytest.fixture(scope="module")
def public_guard(
    _session_simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callers]:
    """A guard with the default ``auth`` settings (health and metrics public)."""
    workdir = tmp_path_factory.mktemp("public")
    config = guard_config({ACCOUNT: account_entry(_session_simulator, HEALTHY)}, port=free_port())
    guard = GuardProcess(config, workdir).start()
    callers = Callers(guard)
    try:
        yield callers
    finally:
        callers.close()
        guard.stop()
