"""Errors of the Genesys client; each carries the HTTP status, platform code and correlation id."""

from __future__ import annotations

import re
from typing import Any

# 403 bodies name the missing permission like this:
# "Unable to perform the requested action. You are missing the following permission(s): [x:y:z]"
_PERMISSION_PATTERN = re.compile(r"permission\(?s?\)?:\s*\[([^\]]*)\]", re.IGNORECASE)


class GenesysError(Exception):
    """A request to Genesys Cloud failed; str() shows the status, code and correlation id."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.correlation_id = correlation_id

    def _details(self) -> list[str]:
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.code:
            details.append(f"code {self.code}")
        if self.correlation_id:
            details.append(f"correlation id {self.correlation_id}")
        return details

    def __str__(self) -> str:
        details = self._details()
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, correlation_id={self.correlation_id!r})"
        )

    def _state(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "correlation_id": self.correlation_id}

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments break the default exception pickling (process pools, Durable).
        return (_rebuild, (type(self), self.message, self._state()))


def _rebuild(cls: type[GenesysError], message: str, state: dict[str, Any]) -> GenesysError:
    """Recreate a pickled GenesysError (any subclass) from its message and attributes."""
    return cls(message, **state)


class AuthError(GenesysError):
    """The credentials were rejected, or a fresh token was refused."""


class PermissionDenied(GenesysError):  # noqa: N818 - names fixed by STYLE.md
    """The OAuth client lacks a permission (HTTP 403); `permission` names it when known."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 403,
        code: str | None = None,
        correlation_id: str | None = None,
        permission: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, correlation_id=correlation_id)
        self.permission = permission

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "permission": self.permission}


class RateLimited(GenesysError):  # noqa: N818 - names fixed by STYLE.md
    """Genesys Cloud kept answering 429 until the retry policy gave up."""


class Unavailable(GenesysError):  # noqa: N818 - names fixed by STYLE.md
    """Genesys Cloud kept failing (5xx, timeouts, connection errors) until the policy gave up."""


class UnexpectedResponse(GenesysError):  # noqa: N818 - names fixed by STYLE.md
    """A response was not JSON or did not have the documented shape."""


def permission_from_message(message: str) -> str | None:
    """Return the permission(s) a 403 message names ('... permission(s): [a:b:c]'), if any."""
    match = _PERMISSION_PATTERN.search(message)
    if match is None:
        return None
    return match.group(1).strip() or None
