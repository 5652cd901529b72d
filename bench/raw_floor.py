"""Raw-SQL floor of the order-to-cash flow: what this machine does with the fewest writes.

    .venv/bin/python bench/raw_floor.py --orders 3000
    .venv/bin/python bench/raw_floor.py --orders 3000 --synchronous off

Issue #7 sets its order-to-cash targets against "a raw-SQL floor of the same writes"
(about 900 orders/s where it was written). This script is such a floor, to tell how
fast the machine at hand is: the contract flow (a 5-line order: create, confirm,
create the shipment, ship, invoice, pay) as six transactions of hand-written SQL on
the `sqlite3` driver, on a minimal schema (text ids, one index where a lookup needs
it), with the writes no implementation can skip: the documents and their lines,
document numbers, reservations, stock moves and balances, three journal entries, one
outbox event and one audit row per step. No business rule runs: no pricing, tax,
credit check, validation, hash chain or ORM.

The database settings are Entrepot's (`db/engine.py`: WAL, synchronous=NORMAL, 8 MB
page cache, a checkpoint every 10,000 pages), so the floor pays the same commits and
checkpoints. `--synchronous off` shows what the checkpoints' `fsync` costs (not a
setting for a system of record: a crash of the machine can corrupt the file).

`bench/o2c.py --via floor` is the other floor: Entrepot's own statements replayed on
the driver. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import uuid_utils

LINES = 5
PRODUCTS = 20

_ID = "tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY"
SCHEMA = f"""
CREATE TABLE sequences(tenant_id TEXT, name TEXT, last INTEGER, PRIMARY KEY(tenant_id, name));
CREATE TABLE orders({_ID}, number TEXT, customer TEXT, status TEXT, total TEXT, updated TEXT);
CREATE INDEX orders_customer ON orders(tenant_id, customer);
CREATE TABLE order_lines({_ID}, order_id TEXT, product TEXT, qty TEXT, price TEXT, shipped TEXT, invoiced TEXT);
CREATE INDEX order_lines_order ON order_lines(order_id);
CREATE TABLE balances({_ID}, product TEXT, on_hand TEXT, reserved TEXT);
CREATE TABLE reservations({_ID}, line_id TEXT, product TEXT, qty TEXT, status TEXT);
CREATE INDEX reservations_line ON reservations(line_id);
CREATE TABLE shipments({_ID}, number TEXT, order_id TEXT, status TEXT);
CREATE TABLE shipment_lines({_ID}, shipment_id TEXT, line_id TEXT, qty TEXT);
CREATE INDEX shipment_lines_shipment ON shipment_lines(shipment_id);
CREATE TABLE moves({_ID}, product TEXT, qty TEXT, cost TEXT, at TEXT);
CREATE INDEX moves_product ON moves(tenant_id, product, at);
CREATE TABLE journal({_ID}, number TEXT, source TEXT, at TEXT);
CREATE TABLE journal_lines({_ID}, entry_id TEXT, account TEXT, debit TEXT, credit TEXT);
CREATE INDEX journal_lines_account ON journal_lines(tenant_id, account);
CREATE TABLE invoices({_ID}, number TEXT, order_id TEXT, customer TEXT, total TEXT, due TEXT, status TEXT);
CREATE INDEX invoices_customer ON invoices(tenant_id, customer, status);
CREATE TABLE invoice_lines({_ID}, invoice_id TEXT, product TEXT, qty TEXT, amount TEXT);
CREATE TABLE payments({_ID}, number TEXT, customer TEXT, amount TEXT);
CREATE TABLE allocations({_ID}, payment_id TEXT, invoice_id TEXT, amount TEXT);
CREATE TABLE outbox(seq INTEGER PRIMARY KEY, tenant_id TEXT, id TEXT, type TEXT, subject TEXT, data TEXT);
CREATE INDEX outbox_subject ON outbox(subject);
CREATE TABLE audit(tenant_id TEXT, seq INTEGER, action TEXT, entity TEXT, after TEXT, PRIMARY KEY(tenant_id, seq));
"""
NOW = "2026-11-28T03:00:00"


def _new_id() -> str:
    return uuid_utils.uuid7().hex


class Floor:
    """The six transactions of one order, straight on the driver."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.tenant = _new_id()
        self.products = [_new_id() for _ in range(PRODUCTS)]
        self.balances = {p: _new_id() for p in self.products}
        self.audit_seq = 0
        self.db.execute("BEGIN")
        for p in self.products:
            self.db.execute("INSERT INTO balances VALUES(?,?,?,?,?)",
                            (self.tenant, self.balances[p], p, "10000000", "0"))
        for name in ("SO", "SH", "INV", "PAY", "JE"):
            self.db.execute("INSERT INTO sequences VALUES(?,?,0)", (self.tenant, name))
        self.db.execute("COMMIT")

    def _number(self, name: str) -> str:
        row = self.db.execute("UPDATE sequences SET last=last+1 WHERE tenant_id=? AND name=? RETURNING last",
                              (self.tenant, name)).fetchone()
        return f"{name}-{row[0]}"

    def _event(self, type_: str, subject: str, action: str) -> None:
        self.db.execute("INSERT INTO outbox(tenant_id, id, type, subject, data) VALUES(?,?,?,?,?)",
                        (self.tenant, _new_id(), type_, subject, '{"status": "confirmed", "lines": 5}'))
        self.audit_seq += 1
        self.db.execute("INSERT INTO audit VALUES(?,?,?,?,?)",
                        (self.tenant, self.audit_seq, action, subject, '{"status": "x"}'))

    def _journal(self, source: str, amount: str, debit: str, credit: str) -> None:
        entry = _new_id()
        self.db.execute("INSERT INTO journal VALUES(?,?,?,?,?)", (self.tenant, entry, self._number("JE"), source, NOW))
        for account, dr, cr in ((debit, amount, "0"), (credit, "0", amount)):
            self.db.execute("INSERT INTO journal_lines VALUES(?,?,?,?,?,?)",
                            (self.tenant, _new_id(), entry, account, dr, cr))

    def _transaction(self, step: Any) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        step()
        self.db.execute("COMMIT")

    def order(self, n: int) -> None:
        t, db = self.tenant, self.db
        order, shipment, invoice, payment = _new_id(), _new_id(), _new_id(), _new_id()
        lines = [(_new_id(), self.products[(n + i) % PRODUCTS]) for i in range(LINES)]

        def create() -> None:
            db.execute("INSERT INTO orders VALUES(?,?,?,?,?,?,?)",
                       (t, order, self._number("SO"), "C1", "draft", "99.90", NOW))
            for line, product in lines:
                db.execute("INSERT INTO order_lines VALUES(?,?,?,?,?,?,?,?)",
                           (t, line, order, product, "2", "9.99", "0", "0"))
            self._event("sales_order.created.v1", order, "create")

        def confirm() -> None:
            db.execute("UPDATE orders SET status='confirmed', updated=? WHERE id=?", (NOW, order))
            for line, product in lines:
                db.execute("UPDATE balances SET reserved=reserved+2 WHERE id=?", (self.balances[product],))
                db.execute("INSERT INTO reservations VALUES(?,?,?,?,?,?)", (t, _new_id(), line, product, "2", "open"))
            self._event("sales_order.confirmed.v1", order, "confirm")

        def create_shipment() -> None:
            db.execute("INSERT INTO shipments VALUES(?,?,?,?,?)", (t, shipment, self._number("SH"), order, "draft"))
            for line, _product in lines:
                db.execute("INSERT INTO shipment_lines VALUES(?,?,?,?,?)", (t, _new_id(), shipment, line, "2"))
            self._event("shipment.created.v1", shipment, "create")

        def ship() -> None:
            db.execute("UPDATE shipments SET status='shipped' WHERE id=?", (shipment,))
            for line, product in lines:
                db.execute("INSERT INTO moves VALUES(?,?,?,?,?,?)", (t, _new_id(), product, "-2", "4.00", NOW))
                db.execute("UPDATE balances SET on_hand=on_hand-2, reserved=reserved-2 WHERE id=?",
                           (self.balances[product],))
                db.execute("UPDATE reservations SET status='consumed' WHERE line_id=?", (line,))
                db.execute("UPDATE order_lines SET shipped='2' WHERE id=?", (line,))
            self._journal(shipment, "40.00", "COGS", "INVENTORY")
            db.execute("UPDATE orders SET status='shipped' WHERE id=?", (order,))
            self._event("shipment.shipped.v1", shipment, "ship")

        def invoice_order() -> None:
            db.execute("INSERT INTO invoices VALUES(?,?,?,?,?,?,?,?)",
                       (t, invoice, self._number("INV"), order, "C1", "99.90", "2026-12-28", "posted"))
            for line, product in lines:
                db.execute("INSERT INTO invoice_lines VALUES(?,?,?,?,?,?)",
                           (t, _new_id(), invoice, product, "2", "19.98"))
                db.execute("UPDATE order_lines SET invoiced='2' WHERE id=?", (line,))
            self._journal(invoice, "99.90", "RECEIVABLE", "REVENUE")
            db.execute("UPDATE orders SET status='closed' WHERE id=?", (order,))
            self._event("invoice.posted.v1", invoice, "post")

        def pay() -> None:
            db.execute("INSERT INTO payments VALUES(?,?,?,?,?)", (t, payment, self._number("PAY"), "C1", "99.90"))
            db.execute("INSERT INTO allocations VALUES(?,?,?,?,?)", (t, _new_id(), payment, invoice, "99.90"))
            db.execute("UPDATE invoices SET status='paid' WHERE id=?", (invoice,))
            self._journal(payment, "99.90", "CASH", "RECEIVABLE")
            self._event("payment.received.v1", payment, "record")

        for step in (create, confirm, create_shipment, ship, invoice_order, pay):
            self._transaction(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--synchronous", choices=("normal", "off"), default="normal")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        for pragma in ("journal_mode=WAL", f"synchronous={args.synchronous}", "foreign_keys=ON",
                       "cache_size=-8192", "wal_autocheckpoint=10000", "journal_size_limit=67108864"):
            db.execute("PRAGMA " + pragma)
        db.executescript(SCHEMA)
        floor = Floor(db)
        started, cpu_started = time.perf_counter(), time.process_time()
        for n in range(args.orders):
            floor.order(n)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        db.close()
    print(json.dumps({"bench": "raw_floor", "synchronous": args.synchronous, "lines_per_order": LINES,
                      "orders": args.orders, "seconds": round(seconds, 3),
                      "orders_per_s": round(args.orders / seconds, 1),
                      "orders_per_cpu_s": round(args.orders / cpu, 1)}))


if __name__ == "__main__":
    main()
