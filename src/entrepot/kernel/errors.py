"""Typed domain errors, each with a stable code and the HTTP status it maps to.

Services raise these; the API turns them into RFC 9457 problem+json and the
CLI into a message and a non-zero exit. Nothing else needs to know HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    rule: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "rule": self.rule}


class DomainError(Exception):
    code: str = "domain_error"
    status: int = 400
    title: str = "Request could not be processed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def problem_extra(self) -> dict[str, Any]:
        return dict(self.extra)


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"

    def __init__(self, entity: str, key: object | None = None) -> None:
        detail = f"{entity} {key} not found" if key is not None else f"{entity} not found"
        super().__init__(detail)
        self.entity = entity


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 422
    title = "Validation failed"

    def __init__(self, errors: Iterable[FieldError] | FieldError, detail: str | None = None):
        errs = [errors] if isinstance(errors, FieldError) else list(errors)
        self.errors: list[FieldError] = errs
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errs))

    def problem_extra(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


def invalid(field: str, message: str, rule: str = "invalid") -> ValidationFailed:
    return ValidationFailed(FieldError(field, message, rule))


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Action not allowed in the current state"

    def __init__(self, document: str, state: str, action: str, allowed: Sequence[str]):
        self.allowed_actions = sorted(allowed)
        super().__init__(
            f"cannot {action} a {document} in state {state}; allowed: "
            + (", ".join(self.allowed_actions) or "none"),
            state=state,
            action=action,
            allowed_actions=self.allowed_actions,
        )


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403
    title = "Permission denied"

    def __init__(self, permission: str) -> None:
        super().__init__(f"this action needs the permission {permission}", permission=permission)
        self.permission = permission


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class PreconditionFailed(DomainError):
    code = "precondition_failed"
    status = 412
    title = "Precondition failed"


class PreconditionRequired(DomainError):
    code = "precondition_required"
    status = 428
    title = "Precondition required"


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after} s")
        self.retry_after = retry_after
