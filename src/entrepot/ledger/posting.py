"""Posting rules: the one declared mapping from business event to journal entry.

`RULES` is a table — each business event names its journal and its legs, a leg
being (account role, debit/credit, amount expression over the event's amounts).
`post(...)` applies a rule; the named functions below (`post_invoice`,
`post_shipment_cost`, …) are thin wrappers other packages call in the same
transaction as their document change. A new document type adds a row here, not
an ad-hoc entry.

Amount expressions are sums and differences of the amounts the caller passes
(`"net + tax"`). A leg whose amount comes out negative posts on the other side
(a negative stock adjustment credits inventory). Legs of zero are left out; an
event whose legs are all zero posts nothing and returns None.

Currencies: amounts are in the document currency and converted to the tenant's
functional currency at the rate of the posting date (`NoExchangeRate`, 422,
when there is none). Rules marked `functional_only` (stock valuation) take
functional amounts. A `settles` leg (a payment clearing a receivable or a
payable) is valued at the party's carrying rate — what the open items were
booked at — so a rate move since the invoice lands on the `balancing` leg
(realised FX gain/loss) rather than leaving residue on the control account.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Literal

from sqlalchemy import Select, func, select, type_coerce, union_all

from entrepot.db.types import Exact
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.errors import invalid
from entrepot.kernel.money import ZERO, InvalidAmount, round_money, to_decimal
from entrepot.ledger.chart import JournalCode, Role
from entrepot.ledger.models import JournalEntry, JournalLine
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services.entries import LineDraft, post_entry, to_functional
from entrepot.ledger.services.periods import period_state
from entrepot.ledger.services.rates import ONE, rate_on

Side = Literal["debit", "credit"]
DEBIT: Side = "debit"
CREDIT: Side = "credit"
_TERM = re.compile(r"\s*([+-]?)\s*([a-z_]+)\s*")


@dataclass(frozen=True)
class Leg:
    role: Role
    side: Side
    amount: str = ""  # expression over the event's amounts; empty for the balancing leg
    party: bool = False  # the line carries the customer/supplier (aging, statements)
    due: bool = False  # the line carries the due date (aging)
    settles: bool = False  # valued at the party's carrying rate on this account
    in_functional: bool = False  # the expression is already in the functional currency
    at_source_rate: bool = False  # valued at the rate of the document it corrects, when the caller gives it
    balancing: bool = False  # takes whatever balances the entry (FX difference, price variance)

    @cached_property
    def parsed(self) -> tuple[tuple[int, str], ...]:
        return tuple(self.terms())

    def terms(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        pos = 0
        text = self.amount
        while pos < len(text):
            m = _TERM.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"bad amount expression {text!r}")
            out.append((-1 if m.group(1) == "-" else 1, m.group(2)))
            pos = m.end()
        return out


@dataclass(frozen=True)
class Rule:
    journal: JournalCode
    legs: tuple[Leg, ...]
    description: str
    functional_only: bool = False

    @cached_property
    def amounts(self) -> frozenset[str]:
        return frozenset(name for leg in self.legs for _, name in leg.parsed)

    @cached_property
    def names_party(self) -> bool:
        return any(leg.party for leg in self.legs)

    @cached_property
    def plan(self) -> tuple[tuple[Leg, str, bool], ...]:
        """(leg, its role as the chart keys it, debit?) per leg: what `post` reads per leg."""
        return tuple((leg, leg.role.value, leg.side == DEBIT) for leg in self.legs)


R = Role
RULES: dict[str, Rule] = {
    "invoice": Rule(JournalCode.sales, (
        Leg(R.receivable, DEBIT, "net + tax", party=True, due=True),
        Leg(R.revenue, CREDIT, "net"),
        Leg(R.tax_payable, CREDIT, "tax"),
    ), "Invoice {number}"),
    # Subscription / prepaid invoices: revenue waits in deferred revenue until earned.
    "invoice_deferred": Rule(JournalCode.sales, (
        Leg(R.receivable, DEBIT, "net + tax", party=True, due=True),
        Leg(R.deferred_revenue, CREDIT, "net"),
        Leg(R.tax_payable, CREDIT, "tax"),
    ), "Invoice {number} (deferred revenue)"),
    # A credit note and a refund settle the customer's balance as a payment does: at its carrying
    # rate, the rate move since the invoice (or the payment) realised on FX gains and losses.
    "credit_note": Rule(JournalCode.sales, (
        Leg(R.receivable, CREDIT, "net + tax - discount", party=True, due=True, settles=True),
        Leg(R.revenue, DEBIT, "net"),
        # the tax taken back is what the invoice booked (a tax return corrects it at the invoice's rate)
        Leg(R.tax_payable, DEBIT, "tax", at_source_rate=True),
        # an early-payment discount the goods had earned, taken back: its net part to sales discounts,
        # and its tax part (tenant setting early_discount_reduces_tax; else zero) back to tax payable
        Leg(R.sales_discounts, CREDIT, "discount - discount_tax"),
        Leg(R.tax_payable, CREDIT, "discount_tax", at_source_rate=True),
        Leg(R.fx_gain_loss, DEBIT, balancing=True),
    ), "Credit note {number}"),
    # An early-payment discount taken: its net part is a sales discount; with the tenant setting
    # early_discount_reduces_tax its tax part (else zero) reduces the output tax, at the invoices' rates.
    "customer_payment": Rule(JournalCode.cash, (
        Leg(R.cash, DEBIT, "amount"),
        Leg(R.sales_discounts, DEBIT, "discount - discount_tax"),
        Leg(R.tax_payable, DEBIT, "discount_tax", at_source_rate=True),
        Leg(R.receivable, CREDIT, "amount + discount", party=True, settles=True),
        Leg(R.fx_gain_loss, DEBIT, balancing=True),
    ), "Customer payment"),
    "customer_refund": Rule(JournalCode.cash, (
        Leg(R.receivable, DEBIT, "amount", party=True, settles=True),
        Leg(R.cash, CREDIT, "amount"),
        Leg(R.fx_gain_loss, DEBIT, balancing=True),
    ), "Customer refund"),
    "shipment": Rule(JournalCode.inventory, (
        Leg(R.cogs, DEBIT, "amount"),
        Leg(R.inventory, CREDIT, "amount"),
    ), "Cost of goods shipped", functional_only=True),
    "stock_return": Rule(JournalCode.inventory, (
        Leg(R.inventory, DEBIT, "amount"),
        Leg(R.cogs, CREDIT, "amount"),
    ), "Goods returned to stock", functional_only=True),
    "stock_adjustment": Rule(JournalCode.inventory, (
        Leg(R.inventory, DEBIT, "amount"),
        Leg(R.inventory_adjustment, CREDIT, "amount"),
    ), "Stock adjustment", functional_only=True),
    # Stock on hand when the books start (a go-live, a new warehouse taken over): it was bought before,
    # so it is owners' equity brought in, not a gain of the period.
    "opening_stock": Rule(JournalCode.inventory, (
        Leg(R.inventory, DEBIT, "amount"),
        Leg(R.opening_balance, CREDIT, "amount"),
    ), "Opening stock", functional_only=True),
    "goods_receipt": Rule(JournalCode.inventory, (
        Leg(R.inventory, DEBIT, "amount"),
        Leg(R.grni, CREDIT, "amount"),
    ), "Goods received", functional_only=True),
    # The receipt's value (functional) clears GRNI; the invoice's net differs by the
    # purchase price variance, which balances the entry.
    "supplier_invoice": Rule(JournalCode.purchases, (
        Leg(R.grni, DEBIT, "received", in_functional=True),
        Leg(R.tax_receivable, DEBIT, "tax"),
        Leg(R.payable, CREDIT, "net + tax", party=True, due=True),
        Leg(R.price_variance, DEBIT, balancing=True),
    ), "Supplier invoice {number}"),
    "supplier_payment": Rule(JournalCode.cash, (
        Leg(R.payable, DEBIT, "amount + discount", party=True, settles=True),
        Leg(R.cash, CREDIT, "amount"),
        Leg(R.purchase_discounts, CREDIT, "discount"),
        Leg(R.fx_gain_loss, DEBIT, balancing=True),
    ), "Supplier payment"),
    "deferred_revenue_release": Rule(JournalCode.general, (
        Leg(R.deferred_revenue, DEBIT, "amount"),
        Leg(R.revenue, CREDIT, "amount"),
    ), "Deferred revenue earned", functional_only=True),
}


def _evaluate(leg: Leg, amounts: dict[str, Decimal]) -> Decimal:
    terms = leg.parsed
    if len(terms) == 1 and terms[0][0] == 1:  # most legs are one amount as given: no arithmetic
        return amounts[terms[0][1]]
    return sum((sign * amounts[name] for sign, name in terms), ZERO)


def _carrying_value(uow: UnitOfWork, account_id: uuid.UUID, party_id: uuid.UUID | None, currency: str,
                    settling: Decimal, rate: Decimal, functional: str) -> Decimal:
    """Functional value of `settling` (signed, document currency) against the party's open
    balance on the account: at the rate the open balance was booked at, the excess at spot."""
    chart.hold_foreign_balances(uow)  # a revaluation in flight restates the balance first
    doc_open, func_open = uow.session.execute(
        select(type_coerce(func.coalesce(func.sum(JournalLine.amount), 0), Exact()),
               type_coerce(func.coalesce(func.sum(JournalLine.debit), 0), Exact())
               - type_coerce(func.coalesce(func.sum(JournalLine.credit), 0), Exact()))
        .where(JournalLine.account_id == account_id, JournalLine.party_id == party_id,
               JournalLine.currency == currency)
    ).one()
    doc_open, func_open = Decimal(doc_open or 0), Decimal(func_open or 0)
    if not doc_open or (doc_open > 0) == (settling > 0):
        return round_money(settling * rate, functional)
    settled = settling if abs(settling) <= abs(doc_open) else -doc_open
    carried = round_money(func_open * settled / doc_open, functional)
    return carried + round_money((settling - settled) * rate, functional)


def post(
    uow: UnitOfWork,
    event: str,
    *,
    source_id: uuid.UUID | None,
    on: date,
    amounts: dict[str, object],
    currency: str | None = None,
    party_id: uuid.UUID | None = None,
    due_on: date | None = None,
    number: str = "",
    description: str | None = None,
    source_rate: Decimal | None = None,
    source_value: Decimal | None = None,
    source_before: Mapping[str, Decimal] | None = None,
) -> JournalEntry | None:
    """Apply RULES[event]. Returns the posted entry, or None when every leg is zero. `source_rate`: the
    rate of the document this one corrects, for its `at_source_rate` legs; `source_before`: what earlier
    corrections of that document took of each such leg (by its amount expression, in the document's
    currency), so that all of them together are valued at the rate as one and the last leaves no cent of
    what the document booked behind. `source_value`: instead, the
    functional value of the rule's one `at_source_rate` leg, when it corrects several documents booked
    at their own rates (a payment taking the discounts of several invoices)."""
    rule = RULES.get(event)
    if rule is None:
        raise invalid("event", f"no posting rule for {event!r}; one of {', '.join(sorted(RULES))}", "choice")
    if source_value is not None and sum(leg.at_source_rate for leg in rule.legs) != 1:
        raise ValueError(f"source_value values one at_source_rate leg; {event} has not one")
    if not isinstance(on, date) or isinstance(on, datetime):
        raise invalid("on", "must be a date", "date")
    functional = chart.functional_currency(uow)
    if rule.functional_only or currency is None:
        currency = functional
    values: dict[str, Decimal] = {}
    for name in rule.amounts:
        try:
            values[name] = to_decimal(amounts.get(name, 0))
        except InvalidAmount as exc:
            raise invalid(name, str(exc), "decimal") from exc
    if party_id is None and rule.names_party:
        # receivable/payable lines always name their customer/supplier: aging and statements read it
        raise invalid("party_id", f"a {event} posting needs the customer or supplier", "required")
    foreign = currency != functional  # (a foreign currency at par on the day still settles at its carrying rate)
    rate = rate_on(uow, currency, on) if foreign else ONE
    if not any(_evaluate(leg, values) for leg, _, _ in rule.plan if not leg.balancing):
        return None  # every leg zero: nothing is posted, nothing read
    # The period is read (and share-locked) before the accounts: the chart's stamp comes with
    # it, and vouches for the accounts by role known from earlier transactions
    # (chart.role_accounts); post_entry refuses a closed period. The accounts by role are read
    # at most once per transaction (one query for all roles), not per leg. A role with no
    # account is refused only when a leg of it carries an amount (`posting_account` raises).
    period_state(uow, on)
    accounts = chart.role_accounts(uow)
    drafts: list[LineDraft] = []
    balancing: Leg | None = None
    for leg, role, debit in rule.plan:
        if leg.balancing:
            balancing = leg
            continue
        value = _evaluate(leg, values)
        if not value:
            continue
        signed = value if debit else -value
        account = accounts.get(role) or chart.posting_account(uow, role)
        line = LineDraft(account, signed, party_id=party_id if leg.party else None,
                         due_on=(due_on or on) if leg.due else None)
        if leg.in_functional:
            line.functional = signed
            line.amount = signed if rate == 1 else round_money(signed / rate, currency)
        elif leg.settles and foreign:
            line.functional = _carrying_value(uow, account.id, line.party_id, currency, signed, rate, functional)
        elif leg.at_source_rate and source_value is not None and foreign:
            line.functional = source_value if debit else -source_value
        elif leg.at_source_rate and source_rate is not None and foreign:
            before = (source_before or {}).get(leg.amount, ZERO)
            at_source = round_money((before + value) * source_rate, functional) \
                - round_money(before * source_rate, functional)
            line.functional = at_source if debit else -at_source
        drafts.append(line)
    if not drafts:
        return None
    if balancing is not None:
        doc_rest = -sum((d.amount for d in drafts), ZERO)
        func_rest = -sum((d.functional if d.functional is not None else to_functional(d.amount, rate, functional)
                          for d in drafts), ZERO)
        if doc_rest or func_rest:
            drafts.append(LineDraft(chart.posting_account(uow, balancing.role), doc_rest, functional=func_rest))
    text = description or rule.description.format(number=number).strip()
    return post_entry(uow, journal=rule.journal, on=on, currency=currency, lines=drafts, source_type=event,
                      source_id=source_id, description=text, rate=rate)


# --- named postings other packages call ----------------------------------------------------------

D0 = Decimal(0)


def post_invoice(uow: UnitOfWork, *, source_id: uuid.UUID, number: str, on: date, currency: str,
                 customer_id: uuid.UUID, net: Decimal, tax: Decimal, due_on: date | None = None,
                 deferred: bool = False) -> JournalEntry | None:
    """Dr receivable (net + tax, per customer, due `due_on`) / Cr revenue (net) / Cr tax payable (tax).
    `deferred=True` credits deferred revenue instead of revenue (subscriptions)."""
    return post(uow, "invoice_deferred" if deferred else "invoice", source_id=source_id, on=on, currency=currency,
                party_id=customer_id, due_on=due_on, number=number, amounts={"net": net, "tax": tax})


def post_credit_note(uow: UnitOfWork, *, source_id: uuid.UUID, number: str, on: date, currency: str,
                     customer_id: uuid.UUID, net: Decimal, tax: Decimal, discount: Decimal = D0,
                     discount_tax: Decimal = D0, invoice_id: uuid.UUID | None = None, tax_before: Decimal = D0,
                     discount_tax_before: Decimal = D0) -> JournalEntry | None:
    """The reverse of an invoice: Dr revenue, Dr tax payable / Cr receivable (less `discount`, the
    early-payment discount the goods had earned, which goes back: Cr sales discounts, but for
    `discount_tax`, its tax part when the discount reduced the tax, which goes back to tax payable).
    The tax is taken back, and the discount's tax put back, at the rate `invoice_id`'s posting booked it
    at, so a foreign invoice credited in full leaves nothing on tax payable; the rate move lands on FX
    gains and losses. `tax_before` and `discount_tax_before`: the tax and discount tax earlier notes of the
    invoice took back, so that the notes together take back, to the cent, what the invoice (and the payment
    that took the discount) booked, however many there are."""
    return post(uow, "credit_note", source_id=source_id, on=on, currency=currency, party_id=customer_id,
                number=number, amounts={"net": net, "tax": tax, "discount": discount, "discount_tax": discount_tax},
                source_rate=_invoice_rate(uow, invoice_id) if invoice_id else None,
                source_before={"tax": tax_before, "discount_tax": discount_tax_before})


def _invoice_rate(uow: UnitOfWork, invoice_id: uuid.UUID) -> Decimal | None:
    """The rate the invoice's posting was booked at (None when it posted nothing)."""
    return uow.session.scalar(select(JournalEntry.rate).where(
        JournalEntry.source_type.in_(("invoice", "invoice_deferred")), JournalEntry.source_id == invoice_id)
        .order_by(JournalEntry.entry_date).limit(1))


def post_customer_payment(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, currency: str,
                          customer_id: uuid.UUID, amount: Decimal, discount: Decimal = D0,
                          discount_tax: Sequence[tuple[uuid.UUID, Decimal]] = ()) -> JournalEntry | None:
    """Dr cash (amount), Dr sales discounts (discount less its tax part), Dr tax payable (the tax part)
    / Cr receivable (amount + discount). `discount_tax`: (invoice id, tax part of the discount taken on
    it) when the discount reduces the tax (tenant setting early_discount_reduces_tax); each is taken
    off tax payable at the rate its invoice's posting booked the tax at, as a credit note takes tax back.
    Money not applied to invoices simply leaves a credit balance on the customer."""
    tax = sum((part for _, part in discount_tax), D0)
    value = None
    functional = chart.functional_currency(uow) if tax else currency
    if currency != functional:  # each invoice's part at its own rate (the day's, if it posted nothing)
        value = sum((round_money(part * (_invoice_rate(uow, invoice_id) or rate_on(uow, currency, on)), functional)
                     for invoice_id, part in discount_tax if part), D0)
    return post(uow, "customer_payment", source_id=source_id, on=on, currency=currency, party_id=customer_id,
                amounts={"amount": amount, "discount": discount, "discount_tax": tax}, source_value=value)


def post_customer_refund(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, currency: str,
                         customer_id: uuid.UUID, amount: Decimal) -> JournalEntry | None:
    """Dr receivable / Cr cash: money paid back to a customer."""
    return post(uow, "customer_refund", source_id=source_id, on=on, currency=currency, party_id=customer_id,
                amounts={"amount": amount})


def post_shipment_cost(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, amount: Decimal) -> JournalEntry | None:
    """Dr COGS / Cr inventory at the valuation cost (functional currency). None when amount is 0."""
    return post(uow, "shipment", source_id=source_id, on=on, amounts={"amount": amount})


def post_stock_adjustment(uow: UnitOfWork, *, source_id: uuid.UUID, on: date,
                          amount: Decimal) -> JournalEntry | None:
    """Signed, functional: + Dr inventory / Cr inventory adjustments; − the reverse. None when 0."""
    return post(uow, "stock_adjustment", source_id=source_id, on=on, amounts={"amount": amount})


def post_opening_stock(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, amount: Decimal) -> JournalEntry | None:
    """Signed, functional: + Dr inventory / Cr opening balance equity; − the reverse (a correction of
    opening stock). None when 0."""
    return post(uow, "opening_stock", source_id=source_id, on=on, amounts={"amount": amount})


def post_goods_receipt(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, amount: Decimal) -> JournalEntry | None:
    """Dr inventory / Cr goods received not invoiced (functional). None when 0."""
    return post(uow, "goods_receipt", source_id=source_id, on=on, amounts={"amount": amount})


def post_stock_return(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, amount: Decimal) -> JournalEntry | None:
    """Dr inventory / Cr COGS: returned goods back in stock at cost (functional). None when 0."""
    return post(uow, "stock_return", source_id=source_id, on=on, amounts={"amount": amount})


def post_supplier_invoice(uow: UnitOfWork, *, source_id: uuid.UUID, number: str, on: date, currency: str,
                          supplier_id: uuid.UUID, net: Decimal, tax: Decimal, received: Decimal,
                          due_on: date | None = None) -> JournalEntry | None:
    """Dr GRNI (`received`: the receipts' value, functional), Dr tax receivable (tax),
    Dr/Cr price variance (the difference) / Cr payable (net + tax, per supplier)."""
    return post(uow, "supplier_invoice", source_id=source_id, on=on, currency=currency, party_id=supplier_id,
                due_on=due_on, number=number, amounts={"net": net, "tax": tax, "received": received})


def post_supplier_payment(uow: UnitOfWork, *, source_id: uuid.UUID, on: date, currency: str,
                          supplier_id: uuid.UUID, amount: Decimal, discount: Decimal = D0) -> JournalEntry | None:
    """Dr payable (amount + discount) / Cr cash (amount), Cr purchase discounts (discount)."""
    return post(uow, "supplier_payment", source_id=source_id, on=on, currency=currency, party_id=supplier_id,
                amounts={"amount": amount, "discount": discount})


def post_deferred_revenue_release(uow: UnitOfWork, *, source_id: uuid.UUID, on: date,
                                  amount: Decimal) -> JournalEntry | None:
    """Dr deferred revenue / Cr revenue: revenue earned this period (functional). None when 0."""
    return post(uow, "deferred_revenue_release", source_id=source_id, on=on, amounts={"amount": amount})


def entries_for(uow: UnitOfWork, source_id: uuid.UUID) -> list[JournalEntry]:
    """The entries a document posted (and their reversals), oldest first."""
    return list(uow.session.scalars(
        select(JournalEntry).where(JournalEntry.source_id == source_id).order_by(JournalEntry.posted_at,
                                                                                   JournalEntry.number)))


def entry_ids_posted_by(uow: UnitOfWork, sources: Sequence[Select[tuple[uuid.UUID]]]) -> list[uuid.UUID]:
    """The entries (their reversals too) that the documents `sources` select posted, in one statement: the
    queries of document ids are united and the entries found by the (tenant, source type, source id) index,
    for every source type the rules post with."""
    if not sources:
        return []
    ids = sources[0] if len(sources) == 1 else union_all(*sources)
    return list(uow.session.scalars(select(JournalEntry.id).where(
        JournalEntry.source_type.in_(_SOURCE_TYPES), JournalEntry.source_id.in_(ids))))


_SOURCE_TYPES = sorted(RULES)


def reverse_source(uow: UnitOfWork, source_id: uuid.UUID, *, on: date | None = None) -> list[JournalEntry]:
    """Reverse every not-yet-reversed entry a document posted (a cancelled document)."""
    from entrepot.ledger.services.entries import reverse_entry

    entries = entries_for(uow, source_id)
    reversed_ids = {e.reversal_of_id for e in entries if e.reversal_of_id}
    return [reverse_entry(uow, e, on=on) for e in entries
            if e.reversal_of_id is None and e.id not in reversed_ids]


def rules_markdown() -> str:
    """The posting rules as a Markdown table, for docs/ledger.md (generated, never hand-written)."""
    out = ["| business event | journal | debit | credit |", "|---|---|---|---|"]
    for event, rule in RULES.items():
        def legs(side: Side, rule: Rule = rule) -> str:
            parts = []
            for leg in rule.legs:
                if leg.side != side:
                    continue
                what = "the difference" if leg.balancing else leg.amount
                parts.append(f"{leg.role.value} ({what})")
            return "<br>".join(parts)

        journal = rule.journal.value + (" · functional" if rule.functional_only else "")
        out.append(f"| `{event}` | {journal} | {legs(DEBIT)} | {legs(CREDIT)} |")
    return "\n".join(out) + "\n"
