"""Permissions are named strings `domain.noun.verb`; roles grant patterns of them.

Each domain declares its own permission constants in its `permissions.py`;
built-in roles grant by pattern so a new domain's permissions need no edit here
unless a role should get them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from fnmatch import fnmatchcase
from functools import cache

from entrepot.db.registry import import_domain_modules
from entrepot.kernel.context import Actor

TENANT_READ = "identity.tenant.read"
TENANT_MANAGE = "identity.tenant.manage"
API_KEY_MANAGE = "identity.api_key.manage"
USER_MANAGE = "identity.user.manage"
ROLE_MANAGE = "identity.role.manage"
AUDIT_READ = "identity.audit.read"

READ_ALL = "*.read"

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "sales": frozenset(
        # The order desk takes orders and payments; credit control is finance's, apart from it: the desk
        # neither releases a credit hold, nor sets a credit limit or a customer's hold, nor pays credit out.
        {READ_ALL, "sales.order.read", "sales.order.create", "sales.order.confirm", "sales.order.cancel",
         "sales.shipment.*", "sales.quote.*", "sales.return.*", "sales.shipping_rate.*",
         "billing.invoice.*", "billing.payment.read", "billing.payment.create", "pricing.quote.*",
         "catalog.*.read", "parties.customer.read", "parties.customer.create", "parties.customer.update",
         "parties.customer.archive", "parties.customer.import", "inventory.stock.read"}
    ),
    "warehouse": frozenset({READ_ALL, "inventory.*", "sales.shipment.*", "purchasing.receipt.*"}),
    # the buyer keeps the reorder points and order-up-to levels the suggestions come from
    "purchasing": frozenset({READ_ALL, "purchasing.*", "parties.supplier.*", "inventory.stock.read",
                             "inventory.replenishment.*"}),
    "finance": frozenset(
        {READ_ALL, "billing.*", "ledger.*", "finance.*", "parties.customer.credit", "parties.customer.update",
         "sales.order.release_hold"}
    ),
    "viewer": frozenset({READ_ALL}),
    # The self-service portal's role. Its access is to one customer's own orders and invoices, which
    # only the portal's login can scope (a later issue): a key with these permissions would read every
    # customer's documents, and products with their costs. Until then it grants nothing.
    "portal_customer": frozenset(),
}


def permissions_for_builtin(role: str) -> frozenset[str] | None:
    return BUILTIN_ROLES.get(role)


_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+){1,2}$")


@cache
def known_permissions() -> frozenset[str]:
    """Every permission some call or rule checks: the constants of the domains' `permissions.py`."""
    import_domain_modules("permissions")
    return frozenset(
        value for name, module in list(sys.modules.items())
        if name.startswith("entrepot.") and name.endswith(".permissions")
        for constant, value in vars(module).items()
        if constant.isupper() and isinstance(value, str) and _NAME.match(value))


def granted_by(pattern: str) -> list[str]:
    """The known permissions a pattern grants, sorted."""
    return sorted(p for p in known_permissions() if fnmatchcase(p, pattern))


def require_grantable(actor: Actor, patterns: Iterable[str]) -> None:
    """A principal hands on (to a new API key, user or role) only permissions it holds itself:
    else a key allowed to manage keys would issue itself an admin key. 403 naming the first
    permission it lacks."""
    for pattern in sorted(set(patterns)):
        for permission in granted_by(pattern):
            actor.require(permission)
