"""Writing business documents (orders, shipments, invoices, payments and, later, purchase
orders and receipts) without the ORM's unit-of-work bookkeeping, which costs several times
the SQL it sends.

* `insert_document`: a new document and its lines, each written with one prepared INSERT
  (db.prepared), then joined to the session as clean persistent objects, as if loaded.
  Every column gets its value first (its default when left unset), so nothing is read back.
* `working_copy` / `save`: a step reads its document with one prepared statement into plain
  instances of the models, changes them, and `save` writes only what changed.

Either way a caller holding the same rows as ORM objects in the unit of work sees what the
step wrote, the ORM writes nothing twice, and a rollback (of a savepoint too) treats these rows
as it treats rows the ORM flushed. These statements get no automatic tenant filter (db.engine):
rows are written with the unit of work's tenant, refused when they name another (as the ORM's
flush refuses them), and every UPDATE names the tenant.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from entrepot.db.engine import TenancyViolation
from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork
from entrepot.kernel import clock

_Doc = TypeVar("_Doc")
_INSERTS: dict[str, Prepared] = {}


class _Model:
    """What these functions need of a model, looked up once: SQLAlchemy's inspection and column
    iteration cost more than the rest of building a row."""

    __slots__ = ("columns", "identity_class", "new_instance")

    def __init__(self, model: type) -> None:
        mapper = inspect(model)
        self.new_instance = mapper.class_manager.new_instance
        self.identity_class = mapper._identity_class  # the first member of an identity key
        self.columns: list[tuple[str, Column[Any]]] = [(c.key, c) for c in model.__table__.c]  # type: ignore[attr-defined]


_MODELS: dict[type, _Model] = {}


def _model(model: type) -> _Model:
    found = _MODELS.get(model)
    if found is None:
        found = _MODELS[model] = _Model(model)
    return found


def _insert_statement(table: Table) -> Prepared:
    # compiled once per table (db.prepared); every row gives every column
    statement = _INSERTS.get(table.name)
    if statement is None:
        statement = _INSERTS[table.name] = Prepared(insert(table), columns=[c.key for c in table.c])
    return statement


def _row(uow: UnitOfWork, obj: Any, columns: list[tuple[str, Column[Any]]], now: Any) -> dict[str, Any]:
    """Every column's value, defaults filled in on the object itself (so none is left to load;
    set directly: `insert_document` then marks the object as loaded)."""
    values = vars(obj)
    row: dict[str, Any] = {}
    for key, column in columns:
        if key == "tenant_id":
            # As the ORM's flush stamps and checks it (db.engine): this INSERT is not filtered,
            # and SQLite has no row-level security behind it.
            given = values.get(key)
            if given is not None:
                if given != uow.tenant_id:
                    raise TenancyViolation(f"{type(obj).__name__} inserted into another tenant")
                row[key] = given
                continue
            value = uow.tenant_id
        elif key in values:
            row[key] = values[key]
            continue
        elif key in ("created_at", "updated_at"):
            value = now
        elif column.default is None:
            value = None
        elif column.default.is_callable:  # type: ignore[attr-defined]
            value = column.default.arg(None)  # type: ignore[attr-defined]
        else:
            value = column.default.arg  # type: ignore[attr-defined]
        values[key] = value
        row[key] = value
    return row


def new_row(model: type, **values: Any) -> Any:
    """A new row's object with its values set directly, as the ORM's loader sets a loaded row's,
    instead of one attribute event per column; `insert_document` writes it (and fills in the
    columns left out with their defaults)."""
    obj = _model(model).new_instance()
    obj.__dict__.update(values)
    return obj


def insert_document(uow: UnitOfWork, document: Any, collection: str | None = None,
                    lines: Sequence[Any] = ()) -> None:
    """Write a new document and its lines (built as plain model objects) in one statement each,
    and attach them to the session as loaded, clean objects (`document.<collection>` = lines)."""
    session = uow.session
    session.flush()  # rows the ORM still holds go first: the document may reference them
    now = clock.now()
    header = _model(type(document))
    _insert_statement(type(document).__table__).execute(uow, _row(uow, document, header.columns, now))
    if lines:
        line = _model(type(lines[0]))
        _insert_statement(type(lines[0]).__table__).execute_many(
            uow, [_row(uow, ln, line.columns, now) for ln in lines])
        for obj in lines:
            _attach(session, obj, line.identity_class)
    _attach(session, document, header.identity_class)
    _as_flushed(session, (*lines, document), new=True)
    if collection is not None:
        set_committed_value(document, collection, list(lines))


def _attach(session: Session, obj: Any, identity_class: type) -> None:
    """Join a row just written to the session as a loaded, clean, persistent object: what
    make_transient_to_detached and Session.add do, less their general work (every column has its
    value, so nothing is left to expire; the document and its lines are each attached here, so
    no cascade needs walking)."""
    state = instance_state(obj)
    if state.key is not None or state.session_id is not None:
        raise ValueError(f"{type(obj).__name__} {obj.id} is already persistent")
    state.key = (identity_class, (obj.id,), None)  # as Mapper.identity_key_from_primary_key makes it
    state._commit_all(state.dict)  # changes made before the insert are what was written
    session._update_impl(state)  # the identity map and the session's attach events


# ---------------------------------------------------------------- working copies of documents read with Core
#
# A step reads its document (and lines) with one prebuilt Core statement, changes plain
# instances of the models, and `save` writes only what changed, in one statement per table
# and set of columns, with the same version check and bump, and `updated_at`, as the ORM's
# flush. A caller may still hold the same rows as ORM objects in this unit of work (the demo
# drives several steps in one transaction): those are brought up to date as loaded values,
# never marked dirty, so the ORM writes nothing twice.

_AS_READ: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_UPDATES: dict[tuple[str, tuple[str, ...], bool], Prepared] = {}


def working_copy(uow: UnitOfWork, model: type, values: Mapping[str, Any]) -> Any:
    """A plain instance of `model` holding a row's values (as the ORM's loader builds one, without
    its bookkeeping); the row as read is kept to tell what a step changed."""
    obj = _model(model).new_instance()
    obj.__dict__.update(values)
    _AS_READ[obj] = dict(values)
    held = _held(uow, model, values["id"])
    if held is not None:  # what the lock just read is what the caller's object now shows
        for key, value in values.items():
            set_committed_value(held, key, value)
    return obj


def _held(uow: UnitOfWork, model: type, ident: Any) -> Any:
    return uow.session.identity_map.get((_model(model).identity_class, (ident,), None))


def held_or(uow: UnitOfWork, obj: _Doc) -> _Doc:
    """The caller's own object for this row when the unit of work holds one, else the copy."""
    held = _held(uow, type(obj), obj.id)  # type: ignore[attr-defined]
    return obj if held is None else held  # type: ignore[no-any-return]


def _update_statement(table: Table, keys: tuple[str, ...], versioned: bool) -> Prepared:
    cache_key = (table.name, keys, versioned)
    statement = _UPDATES.get(cache_key)
    if statement is None:
        where = [table.c.id == bindparam("b_id"), table.c.tenant_id == bindparam("b_tenant")]
        values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in keys}
        built = update(table)
        if versioned:
            where.append(table.c.version == bindparam("b_version"))
            values["version"] = bindparam("v_version")
            built = built.returning(table.c.version)  # the row it wrote, if its version still matched
        statement = _UPDATES[cache_key] = Prepared(built.where(*where).values(values))
    return statement


def save(uow: UnitOfWork, objs: Sequence[Any]) -> None:
    """Write what changed on these working copies: a versioned document with its version checked
    and bumped (a row changed by someone else raises StaleDataError, as a flush would); lines that
    changed the same columns together in one executemany."""
    now = clock.now()
    batches: dict[tuple[Table, tuple[str, ...]], list[tuple[Any, dict[str, Any]]]] = {}
    for obj in objs:
        before = _AS_READ[obj]
        values = obj.__dict__
        changed = {k: values[k] for k in before if values[k] != before[k]}
        if not changed:
            continue
        if "tenant_id" in changed:  # as the ORM's flush refuses it (db.engine): SQLite has no RLS
            raise TenancyViolation(f"{type(obj).__name__} moved to another tenant")
        table = type(obj).__table__
        if "updated_at" in table.c:
            changed["updated_at"] = now
        if "version" in table.c:
            keys = tuple(changed)
            params = {f"v_{k}": v for k, v in changed.items()}
            params.update(b_id=obj.id, b_tenant=uow.tenant_id, b_version=before["version"],
                          v_version=before["version"] + 1)
            if len(_update_statement(table, keys, True).execute(uow, params)) != 1:
                raise StaleDataError(f"{table.name} {obj.id}: changed by another transaction")
            changed["version"] = before["version"] + 1
            _written(uow, obj, changed)
        else:
            batches.setdefault((table, tuple(changed)), []).append((obj, changed))
    for (table, keys), rows in batches.items():
        _update_statement(table, keys, False).execute_many(uow, [
            {"b_id": obj.id, "b_tenant": uow.tenant_id, **{f"v_{k}": changed[k] for k in keys}}
            for obj, changed in rows])
        for obj, changed in rows:
            _written(uow, obj, changed)


def _written(uow: UnitOfWork, obj: Any, changed: dict[str, Any]) -> None:
    obj.__dict__.update(changed)
    _AS_READ[obj].update(changed)
    held = _held(uow, type(obj), obj.id)
    if held is not None and held is not obj:
        for key, value in changed.items():
            set_committed_value(held, key, value)
        _as_flushed(uow.session, (held,), new=False)


def _as_flushed(session: Session, objs: Sequence[Any], *, new: bool) -> None:
    """Record these objects in the session's current transaction as its flush records what it
    wrote (Session._register_altered), so a rollback treats them as it treats flushed rows: a
    savepoint that rolls back expunges the documents inserted in it and expires the objects
    whose rows it changed, and committing a savepoint hands them on to the enclosing one."""
    transaction = session._transaction  # the innermost: the savepoint, when one is open
    if transaction is None:
        return
    marks = transaction._new if new else transaction._dirty
    for obj in objs:
        marks[instance_state(obj)] = True
