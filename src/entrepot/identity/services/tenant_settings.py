"""A tenant's business settings: the rules each domain reads per tenant.

The domains read them through `tenant_facts(uow).settings` (a missing key means
the default below). They are declared here, in one table, so that what can be set
is checked when it is set (an unknown name or a bad value is a 422 naming it,
nothing written) and so that one page lists them all (`docs/operating.md`).
A change is audited (before and after) and emits `tenant.settings_changed.v1`.
A domain may refuse a change it cannot honour (`guard_setting`): the valuation
method, once stock has moved, is a 409.

Values are stored as given after checking, in JSON: flags as booleans, choices
as strings, the minimum margin as a decimal string, the rate limit as an
integer. `None` removes a setting, so the default applies again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from entrepot.db.registry import load_all_models
from entrepot.db.uow import UnitOfWork
from entrepot.identity.events import TenantSettingsChanged
from entrepot.identity.models import Tenant
from entrepot.identity.services.audit import audit
from entrepot.identity.services.tenants import TENANT_FACTS_MEMO, tenant_facts
from entrepot.integration.outbox import record_event
from entrepot.kernel.errors import DomainError, FieldError, NotFound, PermissionDenied, ValidationFailed, invalid
from entrepot.kernel.money import InvalidAmount, to_decimal


@dataclass(frozen=True)
class Setting:
    default: Any
    check: Callable[[Any, str], Any]  # (value, field) -> the value to store; raises ValidationFailed
    description: str
    # Set by the operator of the installation only (the CLI), never by the tenant over the API:
    # a tenant must not raise its own share of the server.
    operator_only: bool = False


def _choice(*allowed: str) -> Callable[[Any, str], str]:
    def check(value: Any, field: str) -> str:
        if value not in allowed:
            raise invalid(field, f"one of {', '.join(allowed)}", "choice")
        return str(value)

    return check


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, "true or false", "boolean")
    return value


# A margin of 10 means a price of eleven times cost: anything above is a typo for a percentage.
_MAX_MARGIN = 10


def _margin(value: Any, field: str) -> str:
    try:
        margin = to_decimal(value)
    except InvalidAmount:
        raise invalid(field, "a decimal fraction of cost, e.g. \"0.15\" for 15 %", "decimal") from None
    if not 0 <= margin <= _MAX_MARGIN:
        raise invalid(field, f"between 0 and {_MAX_MARGIN} (a fraction of cost: \"0.15\" is 15 %)", "range")
    return format(margin, "f")  # "1e1" is stored as "10": decimals are plain decimal strings


_MAX_RATE = 1_000_000


def _per_minute(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_RATE:
        raise invalid(field, f"a whole number of requests per minute, 1 to {_MAX_RATE:,}", "range")
    return value


_MAX_WARNING_DAYS = 3_650


def _days(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_WARNING_DAYS:
        raise invalid(field, f"a whole number of days, 0 to {_MAX_WARNING_DAYS:,}", "range")
    return value


# Name -> default, check, what it governs. `None` as a default: the server's own setting applies.
SETTINGS: dict[str, Setting] = {
    "allocation_policy": Setting(
        "priority", _choice("priority", "nearest", "split"),
        "Which warehouses allocation takes stock from: the first by priority that can fill a line, "
        "the ship-to region's then country's first, or split across warehouses in priority order."),
    "allow_negative_stock": Setting(
        False, _flag, "Whether stock may leave a location that does not hold it (on hand goes below zero)."),
    "reallocate_on_release": Setting(
        False, _flag, "Whether stock freed by a released reservation goes to open backorders at once."),
    "lot_expiry_warning_days": Setting(
        30, _days, "How many days before a lot expires lot.expiring.v1 announces it (once per lot, checked "
        "hourly by the worker)."),
    "minimum_margin": Setting(
        "0", _margin, "The lowest price allowed without pricing.override, as a fraction over standard cost "
        "(\"0.10\": cost plus 10 %)."),
    "prices_include_tax": Setting(False, _flag, "Whether price lists and order prices include tax."),
    "tax_rounding": Setting(
        "line", _choice("line", "document"), "Tax rounded per line, or once per document."),
    "invoice_grouping": Setting(
        "order", _choice("order", "customer"),
        "One invoice per order, or one per customer for all its orders' shipped quantities."),
    "early_discount_reduces_tax": Setting(
        False, _flag, "Whether an early-payment discount taken reduces the tax due (EU VAT, e.g. Skonto): the "
        "discount is split into its net part (sales discounts) and its tax part (tax payable), in the proportion "
        "of the invoice's tax to its total; a credit note that takes the discount back restores both."),
    "invoice_period": Setting(
        "none", _choice("none", "week", "month"),
        "Invoicing runs by hand only, or also by the worker after each week (Monday to Sunday) or month, for "
        "what shipped up to the period's last day, dated that day."),
    "valuation_method": Setting(
        "moving_average", _choice("moving_average", "fifo"),
        "How stock leaving a warehouse is costed: at the moving average, or first in, first out (cost layers). "
        "Set before the tenant's first stock move; it cannot change after."),
    "rate_limit_per_minute": Setting(
        None, _per_minute, "API requests per minute for the tenant (unset: the server's "
        "ENTREPOT_RATE_LIMIT_PER_MINUTE). Set by the operator (`entrepot tenant settings`), read-only over the API.",
        operator_only=True),
}


# Domains that must refuse some changes (the valuation method once stock has moved) register a guard:
# guard(uow, name, old value, new value) raises a DomainError to refuse. The identity layer cannot ask
# the domains above it, so they tell it.
_guards: dict[str, list[Callable[[UnitOfWork, str, Any, Any], None]]] = {}


def guard_setting(name: str, guard: Callable[[UnitOfWork, str, Any, Any], None]) -> None:
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}")
    guards = _guards.setdefault(name, [])
    if guard not in guards:
        guards.append(guard)


def effective(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared setting with its value: the stored one, else the default."""
    return {name: stored.get(name, setting.default) for name, setting in SETTINGS.items()}


def get_tenant_settings(uow: UnitOfWork) -> dict[str, Any]:
    return effective(tenant_facts(uow).settings)


def update_tenant_settings(
    uow: UnitOfWork, changes: Mapping[str, Any], *, by_operator: bool = False
) -> dict[str, Any]:
    """Set (or, with None, reset to the default) the named settings; returns them all.

    Every name and value is checked before anything is written; a value equal to the
    default is stored as a reset, so "back to the default" is one state, not two.
    An operator-only setting changed through the API (`by_operator` false) is a 403;
    naming it with its current value is not a change and passes.
    The tenant row is locked against other settings changes (FOR NO KEY UPDATE on
    PostgreSQL, so rows that reference the tenant can still be written meanwhile),
    and two changes at once do not lose one another's keys.

    The tenant's facts are forgotten in this transaction; a domain that memoised a
    setting in it earlier keeps that value until the next action (docs/operating.md)."""
    load_all_models()  # every domain's guards are registered (from its provisioning module)
    faults: list[FieldError] = []
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in SETTINGS:
            faults.append(FieldError(name, f"unknown setting; known: {', '.join(SETTINGS)}", "unknown"))
            continue
        try:
            stored = None if value is None else SETTINGS[name].check(value, name)
        except ValidationFailed as exc:  # every bad value is named, not only the first
            faults.extend(exc.errors)
            continue
        checked[name] = None if stored == SETTINGS[name].default else stored
    if faults:
        raise ValidationFailed(faults)
    if not checked:
        return get_tenant_settings(uow)
    tenant = uow.session.get(Tenant, uow.tenant_id, with_for_update={"key_share": True})
    if tenant is None:
        raise NotFound("tenant", uow.tenant_id)
    before = dict(tenant.settings or {})
    after = dict(before)
    for name, value in checked.items():
        if value is None:
            after.pop(name, None)
        else:
            after[name] = value
    changed = sorted(name for name in SETTINGS if before.get(name) != after.get(name))
    # Only a real change is refused: a client that sends back the whole body it read is not
    # changing the operator's settings.
    refused = [name for name in changed if SETTINGS[name].operator_only and not by_operator]
    if refused:
        raise OperatorSetting(refused)
    if changed:
        old, new = effective(before), effective(after)
        for name in changed:
            if old[name] != new[name]:
                for guard in _guards.get(name, ()):
                    guard(uow, name, old[name], new[name])
        tenant.settings = after  # a new dict: the ORM sees the column change
        uow.forget(TENANT_FACTS_MEMO)
        audit(uow, "tenant.settings.update", "tenant", tenant.id,
              before={name: before.get(name) for name in changed}, after={name: after.get(name) for name in changed})
        record_event(uow, TenantSettingsChanged(tenant_id=str(tenant.id), changed=changed, settings=effective(after)),
                     subject=f"tenant/{tenant.id}")
    return effective(after)


class OperatorSetting(PermissionDenied):
    """A setting only the installation's operator may change (403 over the API)."""

    def __init__(self, names: list[str]) -> None:
        DomainError.__init__(
            self, f"{', '.join(names)}: set by the operator of the installation "
            "(`entrepot tenant settings SLUG NAME=VALUE`), not over the API", settings=names)
        self.permission = "operator"
