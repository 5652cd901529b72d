"""`allowed_actions` names calls a client can make, and every declared state machine keeps to it.

A document's read shape and every 409 `invalid_transition` list `allowed_actions`; an integrator
picks the next call from them. So each name, in every state of every machine, must be the last
path segment ("_" written "-") of a POST route on the document: `release_hold` is
`POST /sales-orders/{id}/release-hold`. Transitions the service takes by itself (a credit hold, a
shipment moving its order, invoicing, the scheduler's expiry...) are declared `SYSTEM` in the
tables and are never listed.

Products and customers change status through one route, `POST /<collection>/{id}/status`, whose
body names the action; a supplier's status only through `PATCH /suppliers/{id}` (`status`), one
step from any status to the other, so no 409 can name its actions.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import entrepot
from entrepot.api.app import create_app
from entrepot.api.deps import route_table
from entrepot.kernel.states import StateMachine

PREFIX = "/api/v1"
ROUTES = route_table(create_app())
ID = re.compile(r"{[a-z_]+}")  # the record id, whatever the route calls it
POSTS = {ID.sub("{id}", path.removeprefix(PREFIX)) for path, methods, _ in ROUTES if "POST" in methods}
PATCHES = {ID.sub("{id}", path.removeprefix(PREFIX)) for path, methods, _ in ROUTES if "PATCH" in methods}

# machine (module:name) -> (collection, how a caller takes its actions)
#   "route":  POST <collection>/{id}/<action>
#   "status": POST <collection>/{id}/status with {"action": <action>}
#   "patch":  PATCH <collection>/{id} with the target status (no action names reach a caller)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "entrepot.sales.states:SALES_ORDER": ("/sales-orders", "route"),
    "entrepot.sales.states:ORDER_INVOICING": ("/sales-orders", "route"),
    "entrepot.sales.states:SHIPMENT": ("/shipments", "route"),
    "entrepot.sales.states:QUOTE": ("/quotes", "route"),
    "entrepot.sales.states:RETURN": ("/returns", "route"),
    "entrepot.billing.states:INVOICE": ("/invoices", "route"),
    "entrepot.inventory.states:TRANSFER": ("/transfers", "route"),
    "entrepot.inventory.states:STOCK_COUNT": ("/stock-counts", "route"),
    "entrepot.ledger.states:PERIOD": ("/ledger/periods", "route"),
    "entrepot.catalog.states:PRODUCT_STATUS": ("/products", "status"),
    "entrepot.parties.states:CUSTOMER_STATUS": ("/customers", "status"),
    "entrepot.parties.states:SUPPLIER_STATUS": ("/suppliers", "patch"),
}


def declared_machines() -> dict[str, StateMachine]:
    """Every StateMachine bound at module level in a domain's `states` module."""
    found: dict[str, StateMachine] = {}
    for info in pkgutil.iter_modules(entrepot.__path__):
        try:
            module = importlib.import_module(f"entrepot.{info.name}.states")
        except ModuleNotFoundError:
            continue
        for name, value in vars(module).items():
            if isinstance(value, StateMachine) and not name.startswith("_"):
                found[f"{module.__name__}:{name}"] = value
    return found


MACHINES = declared_machines()
PAIRS = [(key, state) for key, sm in MACHINES.items() for state in sm.states()]


def test_every_declared_machine_has_a_collection():
    assert sorted(MACHINES) == sorted(COLLECTIONS), "add the new machine's collection to COLLECTIONS"


@pytest.mark.parametrize("key,state", PAIRS, ids=[f"{k.split(':')[1]}:{s}" for k, s in PAIRS])
def test_each_allowed_action_is_a_route(key, state):
    machine = MACHINES[key]
    collection, form = COLLECTIONS[key]
    allowed = machine.allowed_actions(state)
    if form == "route":
        missing = [a for a in allowed if f"{collection}/{{id}}/{a.replace('_', '-')}" not in POSTS]
    elif form == "status":
        missing = allowed if f"{collection}/{{id}}/status" not in POSTS else []
    else:
        assert f"{collection}/{{id}}" in PATCHES
        # every status is one step from every other, so PATCH never meets a refused transition
        others = [s for s in machine.states() if s != state]
        missing = [f"{state}->{s}" for s in others
                   if not any(machine.transition_for(state, a) and machine.transition_for(state, a).target == s
                              for a in machine.actions)]
    assert missing == [], (f"{machine.document} in state {state}: allowed_actions {allowed} name no route "
                           f"under POST {collection}/{{id}}/: {missing}")
