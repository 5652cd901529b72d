"""Parties use cases: customers, their addresses and terms; suppliers and supplier items.

Other domains read customers through `customer_facts` (what an order or an invoice needs,
one prepared read per unit of work), `get_customer`, `get_customers`, `default_ship_to`,
`default_bill_to`, and supplier costs through `supplier_items_for`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, update

from entrepot.catalog.rules import (
    check_amount,
    check_bool,
    check_code,
    check_country,
    check_currency,
    check_date,
    check_int,
    check_period,
    check_tax_id,
    check_text,
)
from entrepot.catalog.service import get_product
from entrepot.db import in_lists
from entrepot.db.prepared import Prepared, PreparedIn
from entrepot.db.registry import load_all_models
from entrepot.db.row_locks import hold_row
from entrepot.db.search import contains_text
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.archival import archive_record, refuse_archived
from entrepot.integration.outbox import record_event
from entrepot.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed, reference
from entrepot.kernel.money import format_amount, format_price, is_currency, minor_unit, round_money
from entrepot.parties import events
from entrepot.parties.models import (
    AddressKind,
    Customer,
    CustomerAddress,
    CustomerStatus,
    Supplier,
    SupplierAddress,
    SupplierItem,
    SupplierStatus,
)
from entrepot.parties.permissions import CUSTOMER_CREDIT
from entrepot.parties.states import CUSTOMER_STATUS, SUPPLIER_STATUS, action_to

CUSTOMER_FIELDS = (
    "code", "name", "legal_name", "currency", "credit_limit", "status", "customer_group", "tax_id", "tax_country",
    "tax_exempt", "exemption_certificate", "payment_terms_days", "early_discount_percent", "early_discount_days",
    "email", "phone", "contacts",
)
SUPPLIER_FIELDS = (
    "code", "name", "legal_name", "currency", "status", "tax_id", "tax_country", "payment_terms_days", "email",
    "phone", "contacts",
)
ADDRESS_FIELDS = ("kind", "is_default", "name", "line1", "line2", "city", "region", "postal_code", "country")
SUPPLIER_ITEM_FIELDS = (
    "supplier_id", "product_id", "supplier_sku", "cost", "currency", "min_order_qty", "pack_size",
    "lead_time_days", "valid_from", "valid_to",
)


class CustomerNotActive(Conflict):
    code = "customer_not_active"
    title = "Customer is on hold or blocked"


class CurrencyInUse(Conflict):
    code = "currency_in_use"
    title = "The customer has documents in its currency"


# What ties a customer to its currency: the domains above (sales, billing) register their document
# tables (parties cannot import them); a customer with a row in any keeps its currency.
_currency_holders: list[tuple[str, Any]] = []


def hold_customer_currency(documents: str, model: Any) -> None:
    """Register `model` (a table with a `customer_id`), named `documents` in the refusal: a customer
    with any row of it keeps its currency."""
    _currency_holders.append((documents, model))


# ---------------------------------------------------------------- shared checks


def _unknown(errors: list[FieldError], data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    for name in sorted(set(data) - set(allowed)):
        errors.append(FieldError(name, "is not a known field", "unknown_field"))


def _clean_party(data: Mapping[str, Any], *, partial: bool, fields: tuple[str, ...],
                 statuses: Iterable[str], current: Any = None) -> tuple[dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    _unknown(errors, data, fields)

    def given(name: str) -> bool:
        return name in data

    if not partial or given("code"):
        out["code"] = check_code(errors, "code", data.get("code"))
    if not partial or given("name"):
        out["name"] = check_text(errors, "name", data.get("name"))
    if given("legal_name"):
        out["legal_name"] = check_text(errors, "legal_name", data.get("legal_name"), required=False) or ""
    if not partial or given("currency"):
        out["currency"] = check_currency(errors, "currency", data.get("currency"))
    if given("credit_limit"):
        out["credit_limit"] = check_amount(errors, "credit_limit", data.get("credit_limit"), required=False)
    if given("status") and data["status"] not in (None, ""):
        if data["status"] not in set(statuses):
            errors.append(FieldError("status", f"one of {', '.join(statuses)}", "enum"))
        else:
            out["status"] = data["status"]
    if given("customer_group"):
        group = data.get("customer_group")
        out["customer_group"] = check_code(errors, "customer_group", group) if group not in (None, "") else None
    if given("tax_id") or given("tax_country"):
        raw_id, raw_country, field = data.get("tax_id"), data.get("tax_country"), "tax_id"
        if current is not None and not given("tax_id"):
            # a new country re-checks the stored tax id against that country's rule
            raw_id, field = current.tax_id, "tax_country"
        if (current is not None and not given("tax_country") and raw_id
                and not str(raw_id).strip()[:2].isalpha()):
            raw_country = current.tax_country  # a new id without its prefix keeps the stored country
        tax_id, country = check_tax_id(errors, field, raw_id, raw_country)
        if given("tax_id"):
            out["tax_id"] = tax_id
        if country is not None or given("tax_country"):
            out["tax_country"] = country
    if given("tax_exempt"):
        out["tax_exempt"] = bool(check_bool(errors, "tax_exempt", data.get("tax_exempt")))
    if given("exemption_certificate"):
        out["exemption_certificate"] = check_text(
            errors, "exemption_certificate", data.get("exemption_certificate"), required=False, max_length=100) or None
    if given("payment_terms_days"):
        value = check_int(errors, "payment_terms_days", data.get("payment_terms_days"), maximum=365)
        out["payment_terms_days"] = 30 if value is None else value
    if given("early_discount_percent"):
        pct = check_amount(errors, "early_discount_percent", data.get("early_discount_percent"), required=False)
        if pct is not None and pct >= 100:
            errors.append(FieldError("early_discount_percent", "must be less than 100", "max"))
        out["early_discount_percent"] = pct or Decimal("0")
    if given("early_discount_days"):
        value = check_int(errors, "early_discount_days", data.get("early_discount_days"), maximum=365)
        out["early_discount_days"] = value or 0
    if given("email"):
        email = data.get("email")
        if email in (None, ""):
            out["email"] = None
        elif "@" not in str(email) or len(str(email)) > 320:
            errors.append(FieldError("email", "not a valid email address", "email"))
        else:
            out["email"] = str(email).strip()
    if given("phone"):
        out["phone"] = check_text(errors, "phone", data.get("phone"), required=False, max_length=40) or None
    if given("contacts"):
        out["contacts"] = _clean_contacts(errors, data.get("contacts"))
    _check_terms(errors, out, current)
    return out, errors


def _check_terms(errors: list[FieldError], out: dict[str, Any], current: Any) -> None:
    """A credit limit in the currency's minor unit; an early-payment window inside the payment term."""
    currency = out.get("currency") or getattr(current, "currency", None)
    limit = out.get("credit_limit")
    if limit is not None and currency and is_currency(currency) and round_money(limit, currency) != limit:
        errors.append(FieldError("credit_limit", f"at most {minor_unit(currency)} decimal places in {currency}",
                                 "precision"))
    if "early_discount_days" in out or "payment_terms_days" in out:
        days = out.get("early_discount_days", getattr(current, "early_discount_days", 0) or 0)
        terms = out.get("payment_terms_days", getattr(current, "payment_terms_days", None))
        terms = 30 if terms is None else terms
        if days > terms:
            errors.append(FieldError("early_discount_days", f"at most the payment term ({terms} days): the discount "
                                     "is for paying early", "max"))


def _clean_contacts(errors: list[FieldError], contacts: Any) -> list[dict[str, Any]]:
    if contacts in (None, ""):
        return []
    if not isinstance(contacts, list):
        errors.append(FieldError("contacts", "a list of {name, email, phone, role}", "type"))
        return []
    out = []
    for i, c in enumerate(contacts):
        if not isinstance(c, dict) or not str(c.get("name") or "").strip():
            errors.append(FieldError(f"contacts[{i}].name", "is required", "required"))
            continue
        extra = set(c) - {"name", "email", "phone", "role"}
        if extra:
            errors.append(FieldError(f"contacts[{i}]", f"unknown fields {sorted(extra)}", "unknown_field"))
        out.append({k: (str(c[k]).strip() if c.get(k) is not None else None)
                    for k in ("name", "email", "phone", "role")})
    return out


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: after[k] for k in after if after[k] != before.get(k) and k not in ("updated_at", "version")}


def _as_uuid(value: Any, entity: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound(entity, value) from exc


# ---------------------------------------------------------------- customers


def get_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> Customer:
    customer = uow.session.get(Customer, _as_uuid(customer_id, "customer"))
    if customer is None:
        raise NotFound("customer", customer_id)
    return customer


def lock_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> None:
    """Hold the customer's row until the transaction ends (FOR NO KEY UPDATE): a check of the
    customer's credit limit takes it first, so two at once each count what the other committed.
    The customer's facts are read again after it: a change of its limit or status that this waited
    for is what the check goes by, not what was read before the wait."""
    uow.session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True))
    _forget_customer_facts(uow, _as_uuid(customer_id, "customer"))


def hold_customer_for_document(uow: UnitOfWork, customer_id: uuid.UUID) -> None:
    """A document in the customer's currency (an order, a quote, a payment) is being written: hold
    the customer's row (FOR KEY SHARE) until the transaction ends, and read its facts after that, so
    a change of its currency (`update_customer`, which locks FOR UPDATE) either waits and then sees
    the document, or commits first and the document takes the new currency. SQLite serialises
    writers (BEGIN IMMEDIATE) and needs no lock."""
    cid = _as_uuid(customer_id, "customer")
    hold_row(uow, Customer, cid)
    _forget_customer_facts(uow, cid)


def get_customers(uow: UnitOfWork, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    wanted = list(dict.fromkeys(_as_uuid(i, "customer") for i in ids))
    found = {c.id: c for c in uow.session.scalars(select(Customer).where(Customer.id.in_(wanted)))} if wanted else {}
    for cid in wanted:
        if cid not in found:
            raise NotFound("customer", cid)
    return found


def find_customer_by_code(uow: UnitOfWork, code: str) -> Customer | None:
    return uow.session.scalar(select(Customer).where(Customer.code == code))


@dataclass(frozen=True, slots=True)
class ShipToAddress:
    name: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What order entry, the credit check and billing read of a customer."""

    id: uuid.UUID
    code: str
    status: CustomerStatus
    archived_at: datetime | None
    currency: str
    credit_limit: Decimal | None
    customer_group: str | None
    tax_country: str | None
    tax_exempt: bool
    payment_terms_days: int
    early_discount_percent: Decimal
    early_discount_days: int
    default_ship_to: ShipToAddress | None


_SHIP_TO_FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country")


def _customer_facts_statement() -> Prepared:
    # Prepared statements get no automatic tenant filter: both tables say tenant_id themselves.
    c = Customer.__table__
    a = CustomerAddress.__table__
    ship_to = a.alias("ship_to")
    default_ship_to_id = (
        select(a.c.id)
        .where(a.c.tenant_id == bindparam("tenant_id"), a.c.customer_id == c.c.id,
               a.c.kind == AddressKind.SHIP_TO.value)
        .order_by(a.c.is_default.desc(), a.c.created_at)
        .limit(1)
        .correlate(c)
        .scalar_subquery()
    )
    return Prepared(
        select(c.c.id, c.c.code, c.c.status, c.c.archived_at, c.c.currency, c.c.credit_limit, c.c.customer_group,
               c.c.tax_country, c.c.tax_exempt, c.c.payment_terms_days, c.c.early_discount_percent,
               c.c.early_discount_days, ship_to.c.id, *(ship_to.c[f] for f in _SHIP_TO_FIELDS))
        .select_from(c.outerjoin(ship_to, (ship_to.c.tenant_id == c.c.tenant_id)
                                 & (ship_to.c.id == default_ship_to_id)))
        .where(c.c.tenant_id == bindparam("tenant_id"), c.c.id == bindparam("customer_id"))
    )


_CUSTOMER_FACTS = _customer_facts_statement()
_FACTS_MEMO = "parties.customer_facts"


def customer_facts(uow: UnitOfWork, customer_id: uuid.UUID) -> CustomerFacts:
    """The customer's status, currency, credit limit, tax exemption, payment terms and default
    ship-to, in one prepared read, once per unit of work (an order's entry, pricing and tax,
    and billing's terms all ask). Another tenant's customer is NotFound."""
    cid = _as_uuid(customer_id, "customer")
    known: dict[uuid.UUID, CustomerFacts] = uow.memo(_FACTS_MEMO, dict)
    facts = known.get(cid)
    if facts is None:
        rows = _CUSTOMER_FACTS.execute(uow, {"tenant_id": uow.tenant_id, "customer_id": cid})
        if not rows:
            raise NotFound("customer", customer_id)
        r = rows[0]
        address = ShipToAddress(*r[13:]) if r[12] is not None else None
        facts = known[cid] = CustomerFacts(
            id=r[0], code=r[1], status=CustomerStatus(r[2]), archived_at=r[3], currency=r[4], credit_limit=r[5],
            customer_group=r[6], tax_country=r[7], tax_exempt=bool(r[8]), payment_terms_days=r[9],
            early_discount_percent=r[10], early_discount_days=r[11], default_ship_to=address)
    return facts


def _forget_customer_facts(uow: UnitOfWork, customer_id: uuid.UUID) -> None:
    """A change to the customer or its addresses in this unit of work: read the facts again."""
    uow.memo(_FACTS_MEMO, dict).pop(customer_id, None)


def ensure_can_order(customer: Customer | CustomerFacts) -> None:
    """Raise unless new orders may be confirmed for this customer (active, not archived)."""
    if customer.archived_at is not None or customer.status != CustomerStatus.ACTIVE:
        state = "archived" if customer.archived_at is not None else str(customer.status)
        raise CustomerNotActive(f"customer {customer.code} is {state}", customer_status=state)


def customer_query(*, q: str | None = None, status: str | None = None, customer_group: str | None = None,
                   currency: str | None = None, include_archived: bool = False) -> Select[Any]:
    query = select(Customer)
    if not include_archived:
        query = query.where(Customer.archived_at.is_(None))
    if status:
        query = query.where(Customer.status == status)
    if currency:
        query = query.where(Customer.currency == currency.strip().upper())  # as typed: usd is USD
    if customer_group:
        query = query.where(Customer.customer_group == customer_group)
    if q:
        query = query.where(or_(contains_text(Customer.code, q), contains_text(Customer.name, q)))
    return query


def clean_customer(data: Mapping[str, Any], *, partial: bool = False,
                   current: Customer | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    out, errors = _clean_party(data, partial=partial, fields=(*CUSTOMER_FIELDS, "addresses"),
                               statuses=list(CustomerStatus), current=current)
    exempt = out.get("tax_exempt", current.tax_exempt if current else False)
    certificate = out.get("exemption_certificate", current.exemption_certificate if current else None)
    if exempt and not certificate:
        errors.append(FieldError("exemption_certificate", "a tax-exempt customer needs its certificate reference",
                                 "required"))
    return out, errors


def create_customer(uow: UnitOfWork, data: Mapping[str, Any]) -> Customer:
    values, errors = clean_customer(data)
    addresses = data.get("addresses") or []
    address_values = []
    for i, address in enumerate(addresses):
        a_values, a_errors = clean_address(address)
        errors += [FieldError(f"addresses[{i}].{e.field}", e.message, e.rule) for e in a_errors]
        address_values.append(a_values)
    if errors:
        raise ValidationFailed(errors)
    if find_customer_by_code(uow, values["code"]) is not None:
        raise Conflict(f"a customer with code {values['code']} already exists", field="code")
    status = values.pop("status", CustomerStatus.ACTIVE)
    if values.get("credit_limit") is not None or status != CustomerStatus.ACTIVE:
        uow.actor.require(CUSTOMER_CREDIT)  # credit is extended by whoever holds credit control
    customer = Customer(**values, status=status)
    uow.session.add(customer)
    uow.session.flush()
    audit(uow, "customer.create", "customer", customer.id, after=snapshot(customer))
    record_event(uow, events.CustomerCreated(
        customer_id=str(customer.id), code=customer.code, name=customer.name, currency=customer.currency,
        credit_limit=(format_amount(customer.credit_limit, customer.currency)
                      if customer.credit_limit is not None else None),
        customer_group=customer.customer_group), subject=f"customer/{customer.id}")
    for a_values in address_values:
        _add_address(uow, CustomerAddress, "customer_id", customer.id, a_values, "customer")
    return customer


def update_customer(uow: UnitOfWork, customer_id: uuid.UUID, changes: Mapping[str, Any], *,
                    customer: Customer | None = None) -> Customer:
    customer = customer or get_customer(uow, customer_id)
    refuse_archived(customer, "customer")
    values, errors = clean_customer(changes, partial=True, current=customer)
    if "addresses" in changes:
        errors.append(FieldError("addresses", "change addresses through /customers/{id}/addresses", "read_only"))
    if errors:
        raise ValidationFailed(errors)
    if "code" in values and values["code"] != customer.code and find_customer_by_code(uow, values["code"]):
        raise Conflict(f"a customer with code {values['code']} already exists", field="code")
    if values.get("currency", customer.currency) != customer.currency:
        # its orders, invoices and payments stay in the old one: receivables, credit exposure and
        # the next invoice would mix two currencies
        load_all_models()  # every domain's check is registered (from its provisioning module), in any process
        # Wait for documents being written for it (they hold the row, hold_customer_for_document), then
        # look: one committed since is seen, one started later takes the new currency.
        uow.session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())
        held = [documents for documents, model in _currency_holders
                if uow.session.scalar(select(model.id).where(model.customer_id == customer.id).limit(1))]
        if held:
            raise CurrencyInUse(f"customer {customer.code} has {' and '.join(held)} in {customer.currency}; "
                                "its currency cannot change (open a new customer account instead)", field="currency")
    if ("credit_limit" in values and values["credit_limit"] != customer.credit_limit) or \
            values.get("status", customer.status) != customer.status:
        # the same permission as POST /customers/{id}/status: a credit limit or a hold is credit control's
        uow.actor.require(CUSTOMER_CREDIT)
    before = snapshot(customer)
    target = values.pop("status", None)
    if target is not None:
        action = action_to(CUSTOMER_STATUS, customer.status, target)
        if action:
            CUSTOMER_STATUS.apply(customer, action)
    for name, value in values.items():
        if getattr(customer, name) != value:
            setattr(customer, name, value)
    return _finish_customer(uow, customer, before)


def change_customer_status(uow: UnitOfWork, customer_id: uuid.UUID, action: str) -> Customer:
    """hold / release / block / unblock, as the customer status machine allows."""
    customer = get_customer(uow, customer_id)
    refuse_archived(customer, "customer")
    before = snapshot(customer)
    CUSTOMER_STATUS.apply(customer, action)
    return _finish_customer(uow, customer, before)


def _finish_customer(uow: UnitOfWork, customer: Customer, before: dict[str, Any]) -> Customer:
    uow.session.flush()
    _forget_customer_facts(uow, customer.id)
    after = snapshot(customer)
    changed = _changed(before, after)
    if changed:
        audit(uow, "customer.update", "customer", customer.id, before=before, after=after)
        record_event(uow, events.CustomerUpdated(customer_id=str(customer.id), code=customer.code, changes=changed),
                     subject=f"customer/{customer.id}")
    return customer


def archive_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> Customer:
    customer = get_customer(uow, customer_id)
    _forget_customer_facts(uow, customer.id)
    return archive_record(uow, customer, "customer",
                          events.CustomerArchived(customer_id=str(customer.id), code=customer.code))


# ---------------------------------------------------------------- addresses


def clean_address(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    _unknown(errors, data, ADDRESS_FIELDS)
    out: dict[str, Any] = {}
    kind = data.get("kind")
    if kind not in set(AddressKind):
        errors.append(FieldError("kind", "bill_to or ship_to", "enum"))
    out["kind"] = kind
    out["is_default"] = bool(check_bool(errors, "is_default", data.get("is_default")))
    out["name"] = check_text(errors, "name", data.get("name"), required=False) or ""
    out["line1"] = check_text(errors, "line1", data.get("line1"))
    out["line2"] = check_text(errors, "line2", data.get("line2"), required=False) or ""
    out["city"] = check_text(errors, "city", data.get("city"), max_length=100)
    out["region"] = check_text(errors, "region", data.get("region"), required=False, max_length=100) or ""
    out["postal_code"] = check_text(errors, "postal_code", data.get("postal_code"), required=False,
                                    max_length=20) or ""
    out["country"] = check_country(errors, "country", data.get("country"))
    return out, errors


def _add_address(uow: UnitOfWork, model: Any, owner_field: str, owner_id: uuid.UUID, values: dict[str, Any],
                 entity: str) -> Any:
    owner_col = getattr(model, owner_field)
    same_kind = select(func.count()).where(owner_col == owner_id, model.kind == values["kind"])
    if uow.session.scalar(same_kind) == 0:
        values = {**values, "is_default": True}  # the first address of a kind is its default
    elif values["is_default"]:
        uow.session.execute(update(model).where(owner_col == owner_id, model.kind == values["kind"])
                            .values(is_default=False))
    address = model(**values, **{owner_field: owner_id})
    uow.session.add(address)
    uow.session.flush()
    audit(uow, f"{entity}.address.add", entity, owner_id, after=snapshot(address))
    return address


def add_customer_address(uow: UnitOfWork, customer_id: uuid.UUID, data: Mapping[str, Any]) -> CustomerAddress:
    customer = get_customer(uow, customer_id)
    refuse_archived(customer, "customer")
    values, errors = clean_address(data)
    if errors:
        raise ValidationFailed(errors)
    _forget_customer_facts(uow, customer.id)
    return _add_address(uow, CustomerAddress, "customer_id", customer.id, values, "customer")


def customer_addresses(uow: UnitOfWork, customer_id: uuid.UUID) -> list[CustomerAddress]:
    get_customer(uow, customer_id)
    return list(uow.session.scalars(select(CustomerAddress).where(CustomerAddress.customer_id == customer_id)
                                    .order_by(CustomerAddress.kind, CustomerAddress.created_at)))


def _default_address(uow: UnitOfWork, customer_id: uuid.UUID, kind: AddressKind) -> CustomerAddress | None:
    return uow.session.scalar(select(CustomerAddress).where(
        CustomerAddress.customer_id == _as_uuid(customer_id, "customer"), CustomerAddress.kind == kind)
        .order_by(CustomerAddress.is_default.desc(), CustomerAddress.created_at).limit(1))


def default_ship_to(uow: UnitOfWork, customer_id: uuid.UUID) -> CustomerAddress | None:
    """The customer's default ship-to address (or its first ship-to), None when it has none."""
    return _default_address(uow, customer_id, AddressKind.SHIP_TO)


def default_bill_to(uow: UnitOfWork, customer_id: uuid.UUID) -> CustomerAddress | None:
    return _default_address(uow, customer_id, AddressKind.BILL_TO)


# ---------------------------------------------------------------- suppliers


def lock_supplier(uow: UnitOfWork, supplier_id: uuid.UUID) -> None:
    """Hold the supplier's row until the transaction ends (FOR NO KEY UPDATE)."""
    uow.session.execute(select(Supplier.id).where(Supplier.id == supplier_id).with_for_update(key_share=True))


def get_supplier(uow: UnitOfWork, supplier_id: uuid.UUID) -> Supplier:
    supplier = uow.session.get(Supplier, _as_uuid(supplier_id, "supplier"))
    if supplier is None:
        raise NotFound("supplier", supplier_id)
    return supplier


def find_supplier_by_code(uow: UnitOfWork, code: str) -> Supplier | None:
    return uow.session.scalar(select(Supplier).where(Supplier.code == code))


def supplier_query(*, q: str | None = None, status: str | None = None, currency: str | None = None,
                   include_archived: bool = False) -> Select[Any]:
    query = select(Supplier)
    if not include_archived:
        query = query.where(Supplier.archived_at.is_(None))
    if status:
        query = query.where(Supplier.status == status)
    if currency:
        query = query.where(Supplier.currency == currency.strip().upper())
    if q:
        query = query.where(or_(contains_text(Supplier.code, q), contains_text(Supplier.name, q)))
    return query


def clean_supplier(data: Mapping[str, Any], *, partial: bool = False,
                   current: Supplier | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    return _clean_party(data, partial=partial, fields=(*SUPPLIER_FIELDS, "addresses"), statuses=list(SupplierStatus),
                        current=current)


def create_supplier(uow: UnitOfWork, data: Mapping[str, Any]) -> Supplier:
    values, errors = clean_supplier(data)
    address_values = []
    for i, address in enumerate(data.get("addresses") or []):
        a_values, a_errors = clean_address(address)
        errors += [FieldError(f"addresses[{i}].{e.field}", e.message, e.rule) for e in a_errors]
        address_values.append(a_values)
    if errors:
        raise ValidationFailed(errors)
    if find_supplier_by_code(uow, values["code"]) is not None:
        raise Conflict(f"a supplier with code {values['code']} already exists", field="code")
    status = values.pop("status", SupplierStatus.ACTIVE)
    supplier = Supplier(**values, status=status)
    uow.session.add(supplier)
    uow.session.flush()
    audit(uow, "supplier.create", "supplier", supplier.id, after=snapshot(supplier))
    record_event(uow, events.SupplierCreated(supplier_id=str(supplier.id), code=supplier.code, name=supplier.name,
                                             currency=supplier.currency), subject=f"supplier/{supplier.id}")
    for a_values in address_values:
        _add_address(uow, SupplierAddress, "supplier_id", supplier.id, a_values, "supplier")
    return supplier


def update_supplier(uow: UnitOfWork, supplier_id: uuid.UUID, changes: Mapping[str, Any], *,
                    supplier: Supplier | None = None) -> Supplier:
    supplier = supplier or get_supplier(uow, supplier_id)
    refuse_archived(supplier, "supplier")
    values, errors = clean_supplier(changes, partial=True, current=supplier)
    if "addresses" in changes:
        errors.append(FieldError("addresses", "change addresses through /suppliers/{id}/addresses", "read_only"))
    if errors:
        raise ValidationFailed(errors)
    if "code" in values and values["code"] != supplier.code and find_supplier_by_code(uow, values["code"]):
        raise Conflict(f"a supplier with code {values['code']} already exists", field="code")
    before = snapshot(supplier)
    target = values.pop("status", None)
    if target is not None:
        action = action_to(SUPPLIER_STATUS, supplier.status, target)
        if action:
            SUPPLIER_STATUS.apply(supplier, action)
    for name, value in values.items():
        if getattr(supplier, name) != value:
            setattr(supplier, name, value)
    uow.session.flush()
    after = snapshot(supplier)
    changed = _changed(before, after)
    if changed:
        audit(uow, "supplier.update", "supplier", supplier.id, before=before, after=after)
        record_event(uow, events.SupplierUpdated(supplier_id=str(supplier.id), code=supplier.code, changes=changed),
                     subject=f"supplier/{supplier.id}")
    return supplier


def archive_supplier(uow: UnitOfWork, supplier_id: uuid.UUID) -> Supplier:
    supplier = get_supplier(uow, supplier_id)
    return archive_record(uow, supplier, "supplier",
                          events.SupplierArchived(supplier_id=str(supplier.id), code=supplier.code))


def add_supplier_address(uow: UnitOfWork, supplier_id: uuid.UUID, data: Mapping[str, Any]) -> SupplierAddress:
    supplier = get_supplier(uow, supplier_id)
    refuse_archived(supplier, "supplier")
    values, errors = clean_address(data)
    if errors:
        raise ValidationFailed(errors)
    return _add_address(uow, SupplierAddress, "supplier_id", supplier.id, values, "supplier")


def supplier_addresses(uow: UnitOfWork, supplier_id: uuid.UUID) -> list[SupplierAddress]:
    get_supplier(uow, supplier_id)
    return list(uow.session.scalars(select(SupplierAddress).where(SupplierAddress.supplier_id == supplier_id)
                                    .order_by(SupplierAddress.kind, SupplierAddress.created_at)))


# ---------------------------------------------------------------- supplier items


def get_supplier_item(uow: UnitOfWork, item_id: uuid.UUID) -> SupplierItem:
    item = uow.session.get(SupplierItem, _as_uuid(item_id, "supplier item"))
    if item is None:
        raise NotFound("supplier item", item_id)
    return item


def clean_supplier_item(data: Mapping[str, Any], *, partial: bool = False,
                        current: SupplierItem | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    _unknown(errors, data, SUPPLIER_ITEM_FIELDS)
    out: dict[str, Any] = {}

    def want(name: str) -> bool:
        return name in data or not partial

    for ref in ("supplier_id", "product_id"):
        if ref in data and partial:
            errors.append(FieldError(ref, "cannot be changed; add a new supplier item", "read_only"))
        elif not partial:
            value = data.get(ref)
            try:
                out[ref] = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
            except ValueError:
                errors.append(FieldError(ref, "is required" if value in (None, "") else f"{value!r} is not an id",
                                         "required" if value in (None, "") else "uuid"))
    if "supplier_sku" in data:
        out["supplier_sku"] = check_text(errors, "supplier_sku", data.get("supplier_sku"), required=False,
                                         max_length=64) or ""
    if want("cost"):
        out["cost"] = check_amount(errors, "cost", data.get("cost"))
    if want("currency"):
        out["currency"] = check_currency(errors, "currency", data.get("currency"))
    for qty in ("min_order_qty", "pack_size"):
        if qty in data:
            out[qty] = check_amount(errors, qty, data.get(qty), positive=True)
    if "lead_time_days" in data:
        out["lead_time_days"] = check_int(errors, "lead_time_days", data.get("lead_time_days"), maximum=3650) or 0
    for d in ("valid_from", "valid_to"):
        if d in data:
            out[d] = check_date(errors, d, data.get(d))
    check_period(errors, out.get("valid_from", current.valid_from if current else None),
                 out.get("valid_to", current.valid_to if current else None))
    return out, errors


def create_supplier_item(uow: UnitOfWork, data: Mapping[str, Any]) -> SupplierItem:
    values, errors = clean_supplier_item(data)
    if errors:
        raise ValidationFailed(errors)
    with reference("supplier_id"):
        supplier = get_supplier(uow, values["supplier_id"])
    refuse_archived(supplier, "supplier")
    with reference("product_id"):
        product = get_product(uow, values["product_id"])
    _refuse_second_item(uow, supplier.id, product.id, values.get("valid_from"))
    item = SupplierItem(**values)
    uow.session.add(item)
    uow.session.flush()
    audit(uow, "supplier_item.create", "supplier_item", item.id, after=snapshot(item))
    record_event(uow, events.SupplierItemCreated(
        supplier_item_id=str(item.id), supplier_id=str(supplier.id), product_id=str(product.id),
        cost=format_price(item.cost, item.currency), currency=item.currency, lead_time_days=item.lead_time_days),
        subject=f"supplier_item/{item.id}")
    return item


def _refuse_second_item(uow: UnitOfWork, supplier_id: uuid.UUID, product_id: uuid.UUID,
                        valid_from: date | None) -> None:
    """A supplier item is known by supplier, product and start (the import's key, the table's unique
    constraint): an open start counts as a value too, which the constraint cannot say (NULLs differ)."""
    lock_supplier(uow, supplier_id)  # two at once: the second sees the first
    same_start = (SupplierItem.valid_from.is_(None) if valid_from is None
                  else SupplierItem.valid_from == valid_from)
    other = uow.session.execute(select(SupplierItem.id, SupplierItem.archived_at).where(
        SupplierItem.supplier_id == supplier_id, SupplierItem.product_id == product_id, same_start)).first()
    if other is not None:
        start = valid_from.isoformat() if valid_from else "no start date"
        which = f"archived supplier item {other[0]}" if other[1] else f"supplier item {other[0]}"
        raise Conflict(f"{which} already has this supplier and product from {start}; give this one another "
                       "valid_from", field="valid_from")


def update_supplier_item(uow: UnitOfWork, item_id: uuid.UUID, changes: Mapping[str, Any]) -> SupplierItem:
    item = get_supplier_item(uow, item_id)
    refuse_archived(item, "supplier item")
    values, errors = clean_supplier_item(changes, partial=True, current=item)
    if errors:
        raise ValidationFailed(errors)
    if "valid_from" in values and values["valid_from"] != item.valid_from:
        _refuse_second_item(uow, item.supplier_id, item.product_id, values["valid_from"])
    before = snapshot(item)
    for name, value in values.items():
        if getattr(item, name) != value:
            setattr(item, name, value)
    uow.session.flush()
    after = snapshot(item)
    changed = _changed(before, after)
    if changed:
        audit(uow, "supplier_item.update", "supplier_item", item.id, before=before, after=after)
        record_event(uow, events.SupplierItemUpdated(
            supplier_item_id=str(item.id), supplier_id=str(item.supplier_id), product_id=str(item.product_id),
            changes=changed), subject=f"supplier_item/{item.id}")
    return item


def archive_supplier_item(uow: UnitOfWork, item_id: uuid.UUID) -> SupplierItem:
    item = get_supplier_item(uow, item_id)
    return archive_record(uow, item, "supplier_item", events.SupplierItemArchived(
        supplier_item_id=str(item.id), supplier_id=str(item.supplier_id), product_id=str(item.product_id)))


_SI = SupplierItem.__table__
_SU = Supplier.__table__
# Prepared statements get no automatic tenant filter: it says tenant_id itself. A supplier archived or
# blocked is not bought from: its items promise nothing.
_QUICKEST_LEAD_TIMES = PreparedIn(lambda in_: select(_SI.c.product_id, func.min(func.coalesce(_SI.c.lead_time_days, 0)))
                                  .join(_SU, (_SU.c.id == _SI.c.supplier_id) & (_SU.c.tenant_id == _SI.c.tenant_id))
                                  .where(_SI.c.tenant_id == bindparam("tenant_id"), in_(_SI.c.product_id, "ids"),
                                         _SI.c.archived_at.is_(None), _SU.c.archived_at.is_(None),
                                         _SU.c.status == SupplierStatus.ACTIVE,
                                         or_(_SI.c.valid_from.is_(None), _SI.c.valid_from <= bindparam("on")),
                                         or_(_SI.c.valid_to.is_(None), _SI.c.valid_to >= bindparam("on")))
                                  .group_by(_SI.c.product_id))


def quickest_lead_times(uow: UnitOfWork, product_ids: Iterable[uuid.UUID], *, on: date) -> dict[uuid.UUID, int]:
    """Per product, the shortest lead time in days of its current supplier items valid on `on`, of
    suppliers neither archived nor blocked (products without one are left out), in one prepared read:
    confirming an order with a backorder asks, to promise a date."""
    ids = list(dict.fromkeys(product_ids))
    if not ids:
        return {}
    uow.session.flush()  # supplier items the ORM still holds for this transaction count
    rows = _QUICKEST_LEAD_TIMES.execute(uow, {"tenant_id": uow.tenant_id, "on": on}, ids=ids)
    return {product_id: int(days) for product_id, days in rows}


def supplier_items_for(uow: UnitOfWork, product_ids: Iterable[uuid.UUID], *, on: date | None = None,
                       supplier_id: uuid.UUID | None = None) -> list[SupplierItem]:
    """Current (not archived) supplier items of these products, by product, cheapest first per product,
    in one query per `in_lists.MAX_IN_LIST` products (replenishment asks for every product with a
    reorder rule). With `on`, only those valid on that date. Only suppliers that may be bought from:
    active, not archived (a blocked supplier's items stay on file but are not proposed)."""
    query = (select(SupplierItem).join(Supplier, Supplier.id == SupplierItem.supplier_id)
             .where(SupplierItem.archived_at.is_(None), Supplier.archived_at.is_(None),
                    Supplier.status == SupplierStatus.ACTIVE))
    if supplier_id is not None:
        query = query.where(SupplierItem.supplier_id == supplier_id)
    if on is not None:
        query = query.where(or_(SupplierItem.valid_from.is_(None), SupplierItem.valid_from <= on),
                            or_(SupplierItem.valid_to.is_(None), SupplierItem.valid_to >= on))
    query = query.order_by(SupplierItem.product_id, SupplierItem.cost, SupplierItem.id)
    found: list[SupplierItem] = []
    # the slices in id order, so that the items of all of them stay in product order
    for ids in in_lists.slices(sorted(set(product_ids))):
        found += uow.session.scalars(query.where(SupplierItem.product_id.in_(ids)))
    return found
