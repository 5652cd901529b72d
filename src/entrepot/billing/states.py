"""Invoice lifecycle as one table (CONVENTIONS.md: state machines)."""

from __future__ import annotations

from enum import StrEnum

from entrepot.kernel.states import SYSTEM, machine


class InvoiceStatus(StrEnum):
    posted = "posted"
    partially_paid = "partially_paid"
    paid = "paid"
    credited = "credited"


class CreditNoteStatus(StrEnum):
    posted = "posted"  # the only one: a credit note is posted when issued and never changes


# Posted invoices are immutable: payments and credit notes only move the
# settlement state; a correction is a credit note, never an edit. Every row is
# the consequence of another document (a payment or credit applied, a credit
# note issued), so an invoice itself offers no actions.
INVOICE = machine("invoice", "status", [
    ("pay_partially", [InvoiceStatus.posted, InvoiceStatus.partially_paid], InvoiceStatus.partially_paid, SYSTEM),
    ("pay", [InvoiceStatus.posted, InvoiceStatus.partially_paid], InvoiceStatus.paid, SYSTEM),
    ("credit", [InvoiceStatus.posted, InvoiceStatus.partially_paid], InvoiceStatus.credited, SYSTEM),
])

MACHINES = {"invoice": INVOICE}
