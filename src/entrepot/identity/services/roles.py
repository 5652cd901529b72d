"""Tenant-defined roles: a name and the permission patterns it grants."""

from __future__ import annotations

import re

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Role
from entrepot.identity.permissions import BUILTIN_ROLES, granted_by, known_permissions, require_grantable
from entrepot.identity.services.audit import audit, snapshot
from entrepot.kernel.errors import Conflict, FieldError, ValidationFailed

NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
PATTERN = re.compile(r"^(\*|[a-z_*]+(\.[a-z_*]+){0,2})$")


def create_role(uow: UnitOfWork, *, name: str, permissions: list[str], description: str = "") -> Role:
    errors = []
    if not NAME.match(name):
        errors.append(FieldError("name", "lowercase letters, digits and _; 2-63 characters", "pattern"))
    elif name in BUILTIN_ROLES:
        errors.append(FieldError("name", f"{name} is a built-in role", "reserved"))
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


def list_roles(uow: UnitOfWork) -> list[dict[str, object]]:
    builtin = [{"name": n, "permissions": sorted(p), "builtin": True, "description": ""}
               for n, p in BUILTIN_ROLES.items()]
    custom = [{"name": r.name, "permissions": list(r.permissions), "builtin": False, "description": r.description}
              for r in uow.session.scalars(select(Role).order_by(Role.name))]
    return builtin + custom
