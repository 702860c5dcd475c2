"""Exchange error answers: ``{"code": <negative int>, "msg": "<text>"}`` with an HTTP status.

Codes and messages follow Binance USD-M (``exchanges.md`` §1.5), which the generic-v2 contract
copies; the generic-v2 table fixes the HTTP statuses.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error the exchange answers with; raised anywhere in the request pipeline."""

    def __init__(
        self, status: int, code: int, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def timestamp_ahead() -> ApiError:
    return ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def timestamp_outside_window() -> ApiError:
    return ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def mandatory_param(name: str) -> ApiError:
    return ApiError(
        400,
        -1102,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def malformed_param(message: str) -> ApiError:
    return ApiError(400, -1102, message)


def invalid_symbol() -> ApiError:
    return ApiError(400, -1121, "Invalid symbol.")


def invalid_signature() -> ApiError:
    return ApiError(401, -1022, "Signature for this request is not valid.")


def bad_api_key_format() -> ApiError:
    return ApiError(401, -2014, "API-key format invalid.")


def rejected_api_key() -> ApiError:
    return ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def too_many_requests(limit_text: str, retry_after_s: int | None) -> ApiError:
    headers = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return ApiError(
        429,
        -1003,
        f"Too many requests; current limit is {limit_text}. "
        "Please use the websocket for live updates to avoid polling the API.",
        headers,
    )


def banned(until_ms: int, retry_after_s: int | None) -> ApiError:
    headers = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return ApiError(
        418,
        -1003,
        f"Way too many requests; IP banned until {until_ms}. "
        "Please use the websocket for live updates to avoid bans.",
        headers,
    )


def not_found() -> ApiError:
    return ApiError(404, -1099, "Not found, unauthenticated, or unauthorized.")


def method_not_allowed() -> ApiError:
    return ApiError(405, -1000, "Unsupported HTTP method for this endpoint.")
