"""Invoice lifecycle as one table (CONVENTIONS.md: state machines)."""

from __future__ import annotations

from enum import StrEnum

from entrepot.kernel.states import machine


class InvoiceStatus(StrEnum):
    posted = "posted"
    partially_paid = "partially_paid"
    paid = "paid"
    credited = "credited"


# Posted invoices are immutable: payments and credit notes only move the
# settlement state; a correction is a credit note, never an edit.
INVOICE = machine("invoice", "status", [
    ("pay_partially", [InvoiceStatus.posted, InvoiceStatus.partially_paid], InvoiceStatus.partially_paid),
    ("pay", [InvoiceStatus.posted, InvoiceStatus.partially_paid], InvoiceStatus.paid),
    ("credit", [InvoiceStatus.posted, InvoiceStatus.partially_paid], InvoiceStatus.credited),
])

MACHINES = {"invoice": INVOICE}
