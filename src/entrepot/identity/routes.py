from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import select

from entrepot.api.deps import Requires
from entrepot.api.pagination import Page, paginate
from entrepot.db.uow import UnitOfWork
from entrepot.identity import permissions as perms
from entrepot.identity.models import ApiKey, AuditEntry, User
from entrepot.identity.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyRead,
    AuditEntryRead,
    RoleCreate,
    RoleRead,
    RoleUpdate,
    TenantRead,
    TenantSettingsRead,
    TenantSettingsUpdate,
    UserCreate,
    UserRead,
)
from entrepot.identity.services import api_keys, roles, tenant_settings, tenants, users

router = APIRouter(tags=["identity"])


@router.get("/tenant", response_model=TenantRead, summary="The tenant of the credential")
def read_tenant(uow: Annotated[UnitOfWork, Requires(perms.TENANT_READ)]) -> TenantRead:
    return TenantRead.model_validate(tenants.get_tenant(uow, uow.tenant_id))


@router.get("/tenant/settings", response_model=TenantSettingsRead,
            summary="The tenant's business settings (allocation policy, negative stock, tax, invoicing…)")
def read_tenant_settings(uow: Annotated[UnitOfWork, Requires(perms.TENANT_READ, readonly=True)]) -> Any:
    return tenant_settings.get_tenant_settings(uow)


@router.patch("/tenant/settings", response_model=TenantSettingsRead,
              summary="Change some of the tenant's settings (null resets one to its default)")
def update_tenant_settings(
    body: TenantSettingsUpdate, uow: Annotated[UnitOfWork, Requires(perms.TENANT_MANAGE)]
) -> Any:
    settings = tenant_settings.update_tenant_settings(uow, body.model_dump(exclude_unset=True))
    uow.commit()
    return settings


@router.get("/api-keys", response_model=Page[ApiKeyRead])
def list_api_keys(
    uow: Annotated[UnitOfWork, Requires(perms.API_KEY_MANAGE, readonly=True)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ApiKeyRead]:
    rows, next_cursor = paginate(uow, select(ApiKey), ApiKey.id, cursor=cursor, limit=limit)
    return Page(items=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/api-keys", response_model=ApiKeyIssued, status_code=201)
def create_api_key(
    uow: Annotated[UnitOfWork, Requires(perms.API_KEY_MANAGE)],
    body: Annotated[ApiKeyCreate | None, Body()] = None,
) -> ApiKeyIssued:
    body = body or ApiKeyCreate()  # no body: an admin key without a name
    issued = api_keys.create_api_key(uow, role=body.role, name=body.name, expires_at=body.expires_at)
    uow.commit()
    return ApiKeyIssued(**ApiKeyRead.model_validate(issued.api_key).model_dump(), key=issued.secret)


@router.post("/api-keys/{api_key_id}/revoke", response_model=ApiKeyRead)
def revoke_api_key(
    api_key_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.API_KEY_MANAGE)]
) -> ApiKeyRead:
    key = api_keys.revoke_api_key(uow, str(api_key_id))
    uow.commit()
    return ApiKeyRead.model_validate(key)


@router.get("/audit-entries", response_model=Page[AuditEntryRead])
def list_audit_entries(
    uow: Annotated[UnitOfWork, Requires(perms.AUDIT_READ)],
    entity_type: str | None = None,
    entity_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[AuditEntryRead]:
    query = select(AuditEntry)
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    rows, next_cursor = paginate(uow, query, AuditEntry.seq, cursor=cursor, limit=limit, to_key=int)
    return Page(items=[AuditEntryRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/roles", response_model=Page[RoleRead], summary="Built-in and tenant-defined roles")
def list_roles(uow: Annotated[UnitOfWork, Requires(perms.ROLE_MANAGE, readonly=True)]) -> Page[RoleRead]:
    return Page(items=[RoleRead.model_validate(r) for r in roles.list_roles(uow)])


@router.post("/roles", response_model=RoleRead, status_code=201)
def create_role(body: RoleCreate, uow: Annotated[UnitOfWork, Requires(perms.ROLE_MANAGE)]) -> RoleRead:
    role = roles.create_role(uow, name=body.name, permissions=body.permissions, description=body.description)
    uow.commit()
    return RoleRead(name=role.name, permissions=list(role.permissions), builtin=False, description=role.description)


@router.patch("/roles/{role_name}", response_model=RoleRead,
              summary="Change a tenant-defined role's permissions or description (keys and users with it follow)")
def update_role(role_name: str, body: RoleUpdate,
                uow: Annotated[UnitOfWork, Requires(perms.ROLE_MANAGE)]) -> RoleRead:
    role = roles.update_role(uow, role_name, permissions=body.permissions, description=body.description)
    uow.commit()
    return RoleRead(name=role.name, permissions=list(role.permissions), builtin=False, description=role.description)


@router.get("/users", response_model=Page[UserRead])
def list_users(
    uow: Annotated[UnitOfWork, Requires(perms.USER_MANAGE, readonly=True)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[UserRead]:
    rows, next_cursor = paginate(uow, select(User), User.id, cursor=cursor, limit=limit)
    return Page(items=[UserRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, uow: Annotated[UnitOfWork, Requires(perms.USER_MANAGE)]) -> UserRead:
    user = users.create_user(uow, email=body.email, name=body.name, password=body.password, role=body.role)
    uow.commit()
    return UserRead.model_validate(user)
