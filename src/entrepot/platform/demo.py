"""Demo data for `entrepot demo`: a distributor and two dealers with a working order desk.

Everything is created through the domain services — the same validation,
stock moves, ledger postings, audit and events as real use — so every screen
and report has something true to show. Deterministic (seeded), and quick on
SQLite: one unit of work per order, orders spread over the last 75 days.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork, platform_uow, tenant_uow
from entrepot.identity.models import Tenant
from entrepot.kernel import clock
from entrepot.kernel.errors import DomainError

# (sku, name, list price in USD, cost share of price, tax class, weight kg)
PRODUCTS = [
    ("BRG-6204", "Deep groove ball bearing 6204-2RS", "8.40", "0.52", "standard", "0.11"),
    ("BRG-6306", "Deep groove ball bearing 6306-ZZ", "17.90", "0.55", "standard", "0.35"),
    ("BLT-M8-50", "Hex bolt M8x50 zinc (box of 100)", "24.50", "0.48", "standard", "1.9"),
    ("BLT-M12-80", "Hex bolt M12x80 8.8 (box of 50)", "39.00", "0.50", "standard", "3.1"),
    ("NUT-M8", "Hex nut M8 zinc (box of 200)", "11.20", "0.45", "standard", "1.2"),
    ("WSH-M10", "Flat washer M10 (box of 500)", "14.80", "0.40", "standard", "1.4"),
    ("VBT-A42", "V-belt A42", "12.75", "0.50", "standard", "0.2"),
    ("VBT-B60", "V-belt B60", "19.60", "0.52", "standard", "0.4"),
    ("CHN-40-10", "Roller chain #40, 10 ft", "46.00", "0.58", "standard", "1.6"),
    ("SPR-40B18", "Sprocket 40B18", "27.30", "0.55", "standard", "0.6"),
    ("GLV-NIT-L", "Nitrile gloves L (box of 100)", "13.90", "0.47", "standard", "0.7"),
    ("GLV-CUT-9", "Cut-resistant gloves size 9", "9.80", "0.44", "standard", "0.1"),
    ("SAF-GLS-CL", "Safety glasses, clear", "6.50", "0.38", "standard", "0.05"),
    ("EAR-PLG-200", "Ear plugs (box of 200)", "29.00", "0.46", "standard", "0.9"),
    ("LUB-EP2-400", "EP2 grease cartridge 400 g", "7.90", "0.50", "standard", "0.45"),
    ("LUB-ISO68-20", "Hydraulic oil ISO 68, 20 l", "89.00", "0.62", "standard", "18"),
    ("TAP-DUCT-48", "Duct tape 48 mm x 50 m", "8.20", "0.42", "standard", "0.4"),
    ("CBL-TIE-300", "Cable ties 300 mm (bag of 100)", "5.60", "0.35", "standard", "0.3"),
    ("FLT-AIR-20", "Pleated air filter 20x20x2", "16.40", "0.50", "standard", "0.5"),
    ("MTR-1HP-4P", "Electric motor 1 HP 4-pole", "318.00", "0.68", "standard", "14"),
    ("PMP-CENT-1", "Centrifugal pump 1 in", "455.00", "0.66", "standard", "12"),
    ("HOS-HYD-12", "Hydraulic hose 1/2 in per m", "11.30", "0.51", "standard", "0.6"),
    ("WLD-ROD-7018", "Welding rods E7018 5 kg", "36.50", "0.57", "standard", "5"),
    ("ABR-DSC-125", "Cutting disc 125 mm (pack of 25)", "21.00", "0.43", "standard", "1.1"),
]
FX = {"USD": D("1"), "EUR": D("0.92"), "CAD": D("1.36")}
CUSTOMER_NAMES = [
    "Acme Fabrication", "Blue Ridge Mills", "Cascade Packaging", "Delta Machine Works", "Evergreen Plastics",
    "Frontier Mining", "Granite Food Processing", "Harbor Marine Services", "Ironwood Construction",
    "Juniper Water Utility", "Keystone Printing", "Lakeside Bottling", "Midway Logistics", "Northstar Paper",
]
TAX = {
    "USD": [("Texas", "US", "TX", "*", "6.25"), ("Illinois", "US", "IL", "*", "6.25"), ("New Jersey", "US", "NJ", "*",
                                                                                           "6.625")],
    "EUR": [("Germany standard", "DE", None, "*", "19"), ("Germany reduced", "DE", None, "reduced", "7"),
            ("Netherlands", "NL", None, "*", "21")],
    "CAD": [("Ontario HST", "CA", "ON", "*", "13"), ("Quebec GST+QST", "CA", "QC", "*", "14.975"),
            ("Alberta GST", "CA", "AB", "*", "5")],
}
PLACES = {
    "USD": [("Dallas", "TX", "US"), ("Chicago", "IL", "US"), ("Newark", "NJ", "US")],
    "EUR": [("Hamburg", "", "DE"), ("Rotterdam", "", "NL"), ("Munich", "", "DE")],
    "CAD": [("Toronto", "ON", "CA"), ("Montreal", "QC", "CA"), ("Calgary", "AB", "CA")],
}
WAREHOUSES = {
    "USD": [("DAL", "Dallas DC", "US", "TX"), ("CHI", "Chicago DC", "US", "IL"), ("NWK", "Newark DC", "US", "NJ")],
    "EUR": [("HAM", "Hamburg warehouse", "DE", ""), ("RTM", "Rotterdam hub", "NL", "")],
    "CAD": [("TOR", "Toronto warehouse", "CA", "ON")],
}


@dataclass
class Seed:
    tenant_id: uuid.UUID
    currency: str
    rng: random.Random
    products: list[Any] = field(default_factory=list)
    customers: list[Any] = field(default_factory=list)
    warehouses: list[Any] = field(default_factory=list)
    suppliers: list[Any] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def load_demo_data(parent_slug: str, dealer_slugs: list[str], *, scale: float = 1.0) -> None:
    """Fill the demo tenant family: master data, prices, stock and a few hundred orders in every state
    (`scale` shrinks the order count, for tests)."""
    for slug, orders in [(parent_slug, 180), *[(d, 45) for d in dealer_slugs]]:
        orders = max(1, int(orders * scale))
        with platform_uow(readonly=True) as platform:
            tenant = platform.session.scalar(select(Tenant).where(Tenant.slug == slug))
            if tenant is None:
                continue
            tenant_id, currency = tenant.id, tenant.currency
        seed = Seed(tenant_id, currency, random.Random(f"entrepot-demo-{slug}"))
        _master_data(seed)
        _orders(seed, orders)
        _replenishment(seed)
        _tracked_stock(seed)


def _in_tenant(seed: Seed, work: Callable[[UnitOfWork], Any]) -> Any:
    with tenant_uow(seed.tenant_id) as uow:
        result = work(uow)
        uow.commit()
        return result


def _master_data(seed: Seed) -> None:
    from entrepot.billing.service import create_tax_rate
    from entrepot.catalog.service import create_product
    from entrepot.inventory.service import adjust_stock, create_warehouse
    from entrepot.parties.service import add_customer_address, create_customer, create_supplier

    cur, rng = seed.currency, seed.rng
    rate = FX[cur]

    def build(uow: UnitOfWork) -> None:
        from entrepot.sales.shipping import create_shipping_rate

        home = WAREHOUSES[cur][0][2]
        for zone, bands in ((home, (("5", "9.50"), ("30", "24.00"), ("500", "95.00"))),
                            ("*", (("5", "29.00"), ("30", "69.00"), ("500", "240.00")))):
            for weight, charge in bands:
                create_shipping_rate(uow, carrier="UPS", service="ground", zone=zone, max_weight_kg=D(weight),
                                     charge=(D(charge) * rate).quantize(D("0.01")), currency=cur,
                                     free_over=(D(750) * rate).quantize(D("1")) if zone != "*" else None)
        for name, country, region, tax_class, pct in TAX[cur]:
            create_tax_rate(uow, name=name, country=country, region=region, tax_class=tax_class, rate_percent=D(pct))
        for code, name, country, region in WAREHOUSES[cur]:
            seed.warehouses.append(create_warehouse(uow, {"code": code, "name": name, "country": country,
                                                          "region": region} if region else
                                                    {"code": code, "name": name, "country": country}))
        for sku, name, price, cost_share, tax_class, weight in PRODUCTS:
            list_price = (D(price) * rate).quantize(D("0.01"))
            seed.products.append(create_product(uow, {
                "sku": sku, "name": name, "list_price": list_price, "currency": cur,
                "standard_cost": (list_price * D(cost_share)).quantize(D("0.01")), "tax_class": tax_class,
                "weight_kg": D(weight)}))
        for i, name in enumerate(CUSTOMER_NAMES):
            city, region, country = PLACES[cur][i % len(PLACES[cur])]
            # a few customers on tight credit, so some orders land on credit hold
            limit = None if i % 4 == 0 else (D(1500) if i % 5 == 1 else D(rng.choice([25000, 50000, 100000])))
            customer = create_customer(uow, {
                "code": f"C{i + 1:03d}", "name": name, "currency": cur, "credit_limit": limit,
                "payment_terms_days": rng.choice([30, 30, 45, 60]),
                "early_discount_percent": D("2") if i % 3 == 0 else D("0"),
                "early_discount_days": 10 if i % 3 == 0 else 0, "tax_exempt": i == 7,
                **({"exemption_certificate": "EX-2026-0071"} if i == 7 else {}),
            })
            add_customer_address(uow, customer.id, {"kind": "ship_to", "is_default": True,
                                                    "line1": f"{100 + i} Main St", "city": city, "region": region,
                                                    "country": country})
            seed.customers.append(customer)
        for code, name in (("S001", "Great Lakes Bearings"), ("S002", "Midwest Fastener Co"),
                           ("S003", "Pacific Safety Supply")):
            seed.suppliers.append(create_supplier(uow, {"code": code, "name": name, "currency": cur}))
        for product in seed.products:
            for wh in seed.warehouses:
                adjust_stock(uow, warehouse_id=wh.id, product_id=product.id, quantity=D(rng.randint(40, 160)),
                             reason="opening_balance", unit_cost=product.standard_cost)

    _in_tenant(seed, build)
    _prices(seed)


def _prices(seed: Seed) -> None:
    """Volume tiers for everyone, and contract prices for the second customer."""
    from entrepot.pricing.service import create_contract_price, create_price_list

    def build(uow: UnitOfWork) -> None:
        entries = []
        for p in seed.products:
            entries += [{"product_id": p.id, "method": "discount", "value": D("5"), "min_quantity": D("20"),
                         "max_quantity": D("50")},
                        {"product_id": p.id, "method": "discount", "value": D("10"), "min_quantity": D("50")}]
        # tiers start at 20: a 0-19 band falls through to the list price
        create_price_list(uow, {"code": "VOLUME", "name": "Volume tiers", "currency": seed.currency,
                                "priority": 10, "entries": entries})
        key = seed.customers[1]
        for p in seed.products[:5]:
            create_contract_price(uow, {"customer_id": key.id, "product_id": p.id, "currency": seed.currency,
                                        "unit_price": (p.list_price * D("0.85")).quantize(D("0.01")),
                                        "reference": "2026 supply agreement"})

    _in_tenant(seed, build)


def _replenishment(seed: Seed) -> None:
    """Supplier items, reorder rules and transfers between warehouses, so that replenishment
    suggestions and the transfer screens have something real to show. Runs after the orders:
    the shipments are the usage that lead-time demand is worked out from."""
    from entrepot.inventory.service import create_transfer, receive_transfer, set_reorder_rule, stock_available
    from entrepot.parties.service import create_supplier_item

    rng = seed.rng

    def build(uow: UnitOfWork) -> None:
        for i, product in enumerate(seed.products):
            # every product from one supplier, every fourth from a second, dearer but quicker one
            sources = [seed.suppliers[i % 3]] + ([seed.suppliers[(i + 1) % 3]] if i % 4 == 0 else [])
            for n, supplier in enumerate(sources):
                pack = rng.choice([1, 6, 10, 12, 25])
                create_supplier_item(uow, {
                    "supplier_id": supplier.id, "product_id": product.id,
                    "supplier_sku": f"{supplier.code}-{i + 1:04d}",
                    "cost": (product.standard_cost * (D("0.95") if n == 0 else D("1.02"))).quantize(D("0.01")),
                    "currency": seed.currency, "pack_size": D(pack), "min_order_qty": D(pack * 2),
                    "lead_time_days": rng.choice([7, 10, 14, 21]) if n == 0 else 4})
            home = seed.warehouses[0]
            # every third product is kept high in the main warehouse, so some are due for reorder
            point = D(rng.randint(150, 220)) if i % 3 == 0 else D(rng.randint(10, 30))
            set_reorder_rule(uow, product_id=product.id, warehouse_id=home.id, reorder_point=point,
                             order_up_to=point * 2 + 50, safety_stock=D(10))
        if len(seed.warehouses) > 1:
            source, destination = seed.warehouses[0], seed.warehouses[1]
            # the three products with the most available where each transfer leaves, after the orders
            outward = sorted(seed.products, key=lambda p: -stock_available(uow, p.id, source.id))
            inward = sorted(seed.products, key=lambda p: -stock_available(uow, p.id, destination.id))
            received = create_transfer(uow, product_id=outward[0].id, from_warehouse_id=source.id,
                                       to_warehouse_id=destination.id, quantity=D(12))
            receive_transfer(uow, received.id)
            create_transfer(uow, product_id=outward[1].id, from_warehouse_id=source.id,
                            to_warehouse_id=destination.id, quantity=D(8))  # in transit
            create_transfer(uow, product_id=inward[0].id, from_warehouse_id=destination.id,
                            to_warehouse_id=source.id, quantity=D(5), ship=False)  # requested, reserved

    _in_tenant(seed, build)


def _tracked_stock(seed: Seed) -> None:
    """A lot-tracked sealant (one lot within the expiry warning window, one later) and a
    serial-tracked drill, both shipped to a customer, so lot trace, serials and the expiring-lots
    list have something to show; and a posted cycle count of the sealant with a variance."""
    from entrepot.catalog.service import create_product
    from entrepot.inventory.service import post_count, receive_stock, start_count
    from entrepot.sales import service as sales

    rate, home, today = FX[seed.currency], seed.warehouses[0], clock.today()

    def stock(uow: UnitOfWork) -> tuple[Any, Any]:
        sealant = create_product(uow, {
            "sku": "SEAL-250", "name": "Thread sealant, 250 ml", "list_price": (D("8.40") * rate).quantize(D("0.01")),
            "currency": seed.currency, "standard_cost": (D("3.10") * rate).quantize(D("0.01")),
            "tax_class": "standard", "weight_kg": D("0.3"), "track_lots": True})
        drill = create_product(uow, {
            "sku": "DRL-18V", "name": "Cordless drill, 18 V", "list_price": (D("189") * rate).quantize(D("0.01")),
            "currency": seed.currency, "standard_cost": (D("112") * rate).quantize(D("0.01")),
            "tax_class": "standard", "weight_kg": D("1.9"), "track_serials": True})
        for code, days, quantity in (("SL-A", 20, 24), ("SL-B", 200, 48)):
            receive_stock(uow, product_id=sealant.id, warehouse_id=home.id, quantity=D(quantity),
                          unit_cost=sealant.standard_cost, reference="PO-DEMO-SEAL", lot_code=code,
                          expiry=today + timedelta(days=days))
        receive_stock(uow, product_id=drill.id, warehouse_id=home.id, quantity=D(6), unit_cost=drill.standard_cost,
                      reference="PO-DEMO-DRILL", serials=[f"DRL-{seed.currency}-{n:04d}" for n in range(1, 7)])
        return sealant, drill

    sealant, drill = _in_tenant(seed, stock)

    def ship(uow: UnitOfWork) -> None:
        order = sales.create_sales_order(uow, customer_id=seed.customers[0].id, lines=[
            sales.OrderLineInput(sealant.id, D(6)), sales.OrderLineInput(drill.id, D(2))])
        sales.confirm_sales_order(uow, order.id)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        sales.ship_shipment(uow, shipment.id, carrier="UPS", tracking_number=f"1Z{seed.rng.randint(10**8, 10**9)}")

    def count(uow: UnitOfWork) -> None:
        sheet = start_count(uow, warehouse_id=home.id, counter="J. Rivera")
        # two tins of the later lot were found damaged and are not counted
        post_count(uow, sheet.id, [{"product_id": sealant.id, "lot_code": "SL-A", "counted_quantity": D(18)},
                                   {"product_id": sealant.id, "lot_code": "SL-B", "counted_quantity": D(46)}])

    _in_tenant(seed, ship)
    _in_tenant(seed, count)


# Final states of the demo orders, with weights.
PLAN = [("draft", 8), ("cancelled", 5), ("confirmed", 12), ("in_warehouse", 6), ("partially_shipped", 8),
        ("shipped", 10), ("invoiced", 20), ("part_paid", 7), ("paid", 25), ("returned", 5)]


def _orders(seed: Seed, count: int) -> None:
    from entrepot.sales import quotes, returns, service

    rng = seed.rng
    goals = [g for g, _ in PLAN]
    weights = [w for _, w in PLAN]
    # every goal once first, and the staged ones (a shipment on the floor, a return) once per stage, so even
    # a small tenant shows each state; then by weight
    first = [*goals, "in_warehouse", "in_warehouse", "in_warehouse", "returned", "returned"]
    start = clock.now() - timedelta(days=75)
    for n in range(count):
        goal = first[n] if n < len(first) else rng.choices(goals, weights)[0]
        moment = start + timedelta(days=75 * n / count, minutes=rng.randint(0, 600))
        customer = rng.choice(seed.customers)
        picks = rng.sample(seed.products, rng.randint(1, 5))
        lines = [service.OrderLineInput(p.id, D(rng.choice([1, 2, 3, 5, 10, 12, 24, 60]))) for p in picks]
        with clock.frozen_at(moment):
            try:
                _in_tenant(seed, lambda uow, g=goal, c=customer, ls=lines: _drive(uow, seed, g, c, ls, service,
                                                                                  returns))
            except DomainError:
                seed.counts["refused"] = seed.counts.get("refused", 0) + 1  # e.g. a draft over the stock on hand
                continue
        seed.counts[goal] = seed.counts.get(goal, 0) + 1
    with clock.frozen_at(start + timedelta(days=60)):
        for i in range(12):
            customer = seed.customers[i % len(seed.customers)]
            product = seed.products[i % len(seed.products)]

            def quote(uow: UnitOfWork, i: int = i, customer: Any = customer, product: Any = product) -> None:
                q = quotes.create_quote(uow, customer_id=customer.id, lines=[
                    service.OrderLineInput(product.id, D(10 * (i + 1)))],
                    valid_until=clock.today() + timedelta(days=[5, 30, 30, 45][i % 4]))
                if i % 3:
                    quotes.send_quote(uow, q.id)
                if i % 4 == 1:
                    quotes.accept_quote(uow, q.id)
                elif i % 4 == 3 and i % 3:
                    quotes.decline_quote(uow, q.id, reason="went with a cheaper offer")

            _in_tenant(seed, quote)
    _in_tenant(seed, lambda uow: quotes.expire_quotes(uow))  # the 5-day quotes from 75 days ago ran out


def _drive(uow: UnitOfWork, seed: Seed, goal: str, customer: Any, lines: list[Any], service: Any,
           returns: Any) -> None:
    from entrepot.billing import service as billing
    from entrepot.inventory import service as inventory_service

    order = service.create_sales_order(uow, customer_id=customer.id, lines=lines,
                                       customer_po=f"PO-{seed.rng.randint(10000, 99999)}",
                                       shipping=("UPS", "ground") if seed.rng.random() < 0.4 else None)
    if goal == "draft":
        return
    if goal == "cancelled":
        service.confirm_sales_order(uow, order.id)
        service.cancel_sales_order(uow, order.id)
        return
    service.confirm_sales_order(uow, order.id)
    if order.status == "on_hold":
        if goal not in ("in_warehouse", "returned") and seed.rng.random() < 0.5:
            return  # left on credit hold for the credit manager's queue (the staged goals go on)
        service.release_hold(uow, order.id)
    if goal == "confirmed":
        return
    if goal == "in_warehouse":
        # A shipment on the warehouse floor: created, picked or packed, not yet gone.
        shipment = service.create_shipment(uow, sales_order_id=order.id)
        made = seed.counts["floor_shipments"] = seed.counts.get("floor_shipments", 0) + 1
        stage = ["packed", "draft", "picked"][(made - 1) % 3]  # each stage from the first three
        if stage != "draft":
            service.pick_shipment(uow, shipment.id)
        if stage == "packed":
            service.pack_shipment(uow, shipment.id, [{"weight_kg": D("4.5")}])
        return
    if goal == "partially_shipped" and len(order.lines) > 1:
        first = order.lines[0]
        reserved = service.reserved_by_line(uow, order).get(first.id, D(0))
        if reserved > 0:
            shipment = service.create_shipment(uow, sales_order_id=order.id, lines=[
                service.ShipmentLineInput(first.id, reserved)])
            service.ship_shipment(uow, shipment.id, carrier="UPS",
                                  tracking_number=f"1Z{seed.rng.randint(10**8, 10**9)}")
        return
    # One shipment per warehouse the order's stock is reserved in (a dealer that splits lines across its
    # warehouses ships each part from where it is); an order reserved in one warehouse ships once.
    held = inventory_service.reserved_by_warehouse(uow, service.DEMAND, [ln.id for ln in order.lines])
    warehouses = sorted({wid for _, wid in held}, key=str)
    if not warehouses:
        return
    for warehouse_id in warehouses if len(warehouses) > 1 else [None]:
        shipment = service.create_shipment(uow, sales_order_id=order.id, warehouse_id=warehouse_id)
        service.pick_shipment(uow, shipment.id)
        service.pack_shipment(uow, shipment.id, [{"weight_kg": D("4.5")}])
        service.ship_shipment(uow, shipment.id, carrier=seed.rng.choice(["UPS", "FedEx", "DHL"]),
                              tracking_number=f"TRK{seed.rng.randint(10**8, 10**9)}")
        if seed.rng.random() < 0.5:
            service.deliver_shipment(uow, shipment.id)
    if goal == "shipped":
        return
    invoice = service.invoice_sales_order(uow, order.id)
    if goal == "invoiced":
        return
    amount = invoice.amount_due if goal != "part_paid" else (invoice.amount_due / 2).quantize(D("0.01"))
    billing.record_payment(uow, customer_id=customer.id, amount=amount, currency=invoice.currency,
                           allocations=[billing.AllocationInput(invoice.id, amount)], reference="wire")
    if goal == "returned":
        line = order.lines[0]
        if line.quantity_shipped > 0:
            rma = returns.authorise_return(uow, sales_order_id=order.id, reason="wrong size",
                                           restocking_fee_percent=D("10"),
                                           lines=[returns.ReturnLineInput(line.id, D(1))])
            # Most are credited; some wait for the goods, some for the credit note.
            made = seed.counts["returns"] = seed.counts.get("returns", 0) + 1
            stage = ["credited", "authorised", "received", "credited", "credited"][(made - 1) % 5]
            if stage != "authorised":
                returns.receive_return(uow, rma.id)
            if stage == "credited":
                returns.credit_return(uow, rma.id)
