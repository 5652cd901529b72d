"""Tenant-defined roles: a name and the permission patterns it grants."""

from __future__ import annotations

import re

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Role
from entrepot.identity.permissions import BUILTIN_ROLES, granted_by, known_permissions, require_grantable
from entrepot.identity.services.api_keys import clear_auth_cache
from entrepot.identity.services.audit import audit, snapshot
from entrepot.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed

NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
PATTERN = re.compile(r"^(\*|[a-z_*]+(\.[a-z_*]+){0,2})$")


def create_role(uow: UnitOfWork, *, name: str, permissions: list[str], description: str = "") -> Role:
    errors = []
    if not NAME.match(name):
        errors.append(FieldError("name", "lowercase letters, digits and _; 2-63 characters", "pattern"))
    elif name in BUILTIN_ROLES:
        errors.append(FieldError("name", f"{name} is a built-in role", "reserved"))
    _check_patterns(errors, permissions)
    if errors:
        raise ValidationFailed(errors)
    require_grantable(uow.actor, permissions)
    if uow.session.scalar(select(Role.id).where(Role.name == name)) is not None:
        raise Conflict(f"role {name} already exists")
    role = Role(name=name, permissions=sorted(set(permissions)), description=description)
    uow.session.add(role)
    uow.session.flush()
    audit(uow, "role.create", "role", role.id, after=snapshot(role))
    return role


def update_role(uow: UnitOfWork, name: str, *, permissions: list[str] | None = None,
                description: str | None = None) -> Role:
    """Change a tenant-defined role's permissions or description; every key and user acting with it
    acts so from the next request (within the auth cache's few seconds). A caller changes only a role
    holding no more than it does, to one holding no more than it does (as for keys: else a key manager
    could widen its own role, or strip the admins' custom role)."""
    if name in BUILTIN_ROLES:
        raise Conflict(f"{name} is a built-in role: its permissions are fixed; create a role of your own")
    role = uow.session.scalar(select(Role).where(Role.name == name).with_for_update())
    if role is None:
        raise NotFound("role", name)
    errors: list[FieldError] = []
    if permissions is not None:
        _check_patterns(errors, permissions)
    if errors:
        raise ValidationFailed(errors)
    require_grantable(uow.actor, list(role.permissions))
    before = snapshot(role)
    if permissions is not None:
        require_grantable(uow.actor, permissions)
        role.permissions = sorted(set(permissions))
    if description is not None:
        role.description = description
    uow.session.flush()
    if before != snapshot(role):
        audit(uow, "role.update", "role", role.id, before=before, after=snapshot(role))
        uow.after_commit.append(clear_auth_cache)
    return role


def _check_patterns(errors: list[FieldError], permissions: list[str]) -> None:
    for i, p in enumerate(permissions):
        if not PATTERN.match(p):
            errors.append(FieldError(f"permissions[{i}]", f"{p!r} is not a permission pattern like sales.order.*",
                                     "pattern"))
        elif not granted_by(p):
            # a typo would grant nothing, silently: name what the pattern's domain has instead
            domain = p.split(".")[0]
            near = [k for k in sorted(known_permissions()) if k.split(".")[0] == domain]
            hint = f"; {domain} has {', '.join(near)}" if near else ""
            errors.append(FieldError(f"permissions[{i}]", f"{p!r} grants no permission{hint}",
                                     "unknown_permission"))


def list_roles(uow: UnitOfWork) -> list[dict[str, object]]:
    builtin = [{"name": n, "permissions": sorted(p), "builtin": True, "description": ""}
               for n, p in BUILTIN_ROLES.items()]
    custom = [{"name": r.name, "permissions": list(r.permissions), "builtin": False, "description": r.description}
              for r in uow.session.scalars(select(Role).order_by(Role.name))]
    return builtin + custom
