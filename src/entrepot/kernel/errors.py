"""Typed domain errors, each with a stable code and the HTTP status it maps to.

Services raise these; the API turns them into RFC 9457 problem+json and the
CLI into a message and a non-zero exit. Nothing else needs to know HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    rule: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "rule": self.rule}


@dataclass(frozen=True)
class UnknownRecord(FieldError):
    """A field naming, by id, a record this tenant does not have: none such, or another tenant's.
    Alone it makes the request a 404, as the same id in the path would (see ValidationFailed)."""

    rule: str = "exists"


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
    """422 naming each field at fault. When every fault is an `UnknownRecord`, a 404 `not_found`
    (still naming the fields): another tenant's record is a 404 wherever a request names it, and
    answering so for an unknown id too tells nobody whether another tenant has it."""

    code = "validation_failed"
    status = 422
    title = "Validation failed"

    def __init__(self, errors: Iterable[FieldError] | FieldError, detail: str | None = None):
        errs = [errors] if isinstance(errors, FieldError) else list(errors)
        self.errors: list[FieldError] = errs
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errs))
        if errs and all(isinstance(e, UnknownRecord) for e in errs):
            self.code, self.status, self.title = NotFound.code, NotFound.status, NotFound.title

    def problem_extra(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


def invalid(field: str, message: str, rule: str = "invalid") -> ValidationFailed:
    return ValidationFailed(FieldError(field, message, rule))


def unknown(field: str, message: str) -> ValidationFailed:
    """A request names, in `field`, a record this tenant does not have: a 404 naming the field."""
    return ValidationFailed(UnknownRecord(field, message))


def unknown_in_lines(exc: NotFound, ids: Sequence[object], field: str) -> ValidationFailed:
    """A lookup's NotFound (its detail names the missing id) as a 404 naming each line that holds
    it: `field` is a pattern such as "lines[{}].product_id", filled with the line's index."""
    lines = [UnknownRecord(field.format(i), exc.detail) for i, value in enumerate(ids) if str(value) in exc.detail]
    return ValidationFailed(lines or [UnknownRecord(field.split("[", 1)[0], exc.detail)])


@contextmanager
def reference(field: str) -> Iterator[None]:
    """Around the lookup of a record a request names in `field`: NotFound becomes a 404 naming it."""
    try:
        yield
    except NotFound as exc:
        raise unknown(field, exc.detail) from exc


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Action not allowed in the current state"

    def __init__(self, document: str, state: str, action: str, allowed: Sequence[str]):
        self.allowed_actions = sorted(allowed)
        article = "an" if document[:1] in ("a", "e", "i", "o", "u") else "a"
        super().__init__(
            f"cannot {action} {article} {document} in state {state}; allowed: "
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
