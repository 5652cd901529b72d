"""Users of a tenant: back-office staff and portal customers."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.identity.events import UserCreated
from entrepot.identity.models import User
from entrepot.identity.permissions import require_grantable
from entrepot.identity.services.api_keys import resolve_role_permissions
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.kernel.errors import Conflict, FieldError, Unauthenticated, ValidationFailed

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_MAX, NAME_MAX = 320, 200  # the columns users.email and users.name
_hasher = PasswordHasher()


def create_user(uow: UnitOfWork, *, email: str, name: str, password: str, role: str) -> User:
    errors = []
    email = email.strip().lower()
    if not EMAIL.match(email):
        errors.append(FieldError("email", "not a valid email address", "email"))
    elif len(email) > EMAIL_MAX:
        errors.append(FieldError("email", f"at most {EMAIL_MAX} characters", "length"))
    if len(password) < 10:
        errors.append(FieldError("password", "must be at least 10 characters", "min_length"))
    if not name.strip():
        errors.append(FieldError("name", "must not be empty", "required"))
    elif len(name.strip()) > NAME_MAX:
        errors.append(FieldError("name", f"at most {NAME_MAX} characters", "length"))
    if errors:
        raise ValidationFailed(errors)
    require_grantable(uow.actor, resolve_role_permissions(uow, role))
    if uow.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists")
    user = User(email=email, name=name.strip(), password_hash=_hasher.hash(password), role=role)
    uow.session.add(user)
    uow.session.flush()
    audit(uow, "user.create", "user", user.id, after=snapshot(user))
    record_event(uow, UserCreated(user_id=str(user.id), email=email, role=role),
                 subject=f"user/{user.id}")
    return user


def verify_password(uow: UnitOfWork, email: str, password: str) -> User:
    user = uow.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        raise Unauthenticated("wrong email or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise Unauthenticated("wrong email or password") from exc
    return user
