"""Period-end revaluation of open foreign-currency receivables and payables.

Each party's open balance in a foreign currency is restated at the rate of the
revaluation date; the difference is an unrealised FX gain or loss. The
adjustment lines carry the party and the currency (document amount 0), so a
later payment is valued against the restated carrying amount and only the
movement after the revaluation is realised then. One entry per currency.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select, type_coerce

from entrepot.db.types import Exact
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.money import ZERO, round_money
from entrepot.ledger.chart import JournalCode, Role
from entrepot.ledger.models import Account, JournalEntry, JournalLine
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services.entries import LineDraft, post_entry
from entrepot.ledger.services.rates import rate_on


def revalue_open_balances(uow: UnitOfWork, on: date) -> list[JournalEntry]:
    functional = chart.functional_currency(uow)
    accounts = {a.id: a for a in uow.session.scalars(
        select(Account).where(Account.role.in_([Role.receivable.value, Role.payable.value])))}
    if not accounts:
        return []
    # one restatement at a time, and none while a settlement reads a carrying value
    chart.hold_foreign_balances(uow, restate=True)
    rows = uow.session.execute(
        select(JournalLine.account_id, JournalLine.party_id, JournalLine.currency,
               type_coerce(func.sum(JournalLine.amount), Exact()),
               type_coerce(func.sum(JournalLine.debit), Exact()),
               type_coerce(func.sum(JournalLine.credit), Exact()))
        .where(JournalLine.account_id.in_(list(accounts)), JournalLine.currency != functional,
               JournalLine.entry_date <= on)
        .group_by(JournalLine.account_id, JournalLine.party_id, JournalLine.currency)
        .order_by(JournalLine.currency)
    ).all()
    by_currency: dict[str, list[LineDraft]] = {}
    for account_id, party_id, currency, doc, debit, credit in rows:
        doc = Decimal(doc or 0)
        carried = Decimal(debit or 0) - Decimal(credit or 0)
        target = round_money(doc * rate_on(uow, currency, on), functional)
        if target != carried:
            by_currency.setdefault(currency, []).append(
                LineDraft(accounts[account_id], ZERO, functional=target - carried, party_id=party_id,
                          description=f"revaluation of {doc} {currency}"))
    entries = []
    fx = chart.account_for_role(uow, Role.fx_gain_loss)
    for currency, drafts in by_currency.items():
        difference = sum((d.functional or ZERO for d in drafts), ZERO)
        if difference:
            drafts.append(LineDraft(fx, ZERO, functional=-difference, description="unrealised FX"))
        if len([d for d in drafts if d.functional]) < 2:
            continue  # restatements that cancel each other out exactly: nothing to post
        entries.append(post_entry(
            uow, journal=JournalCode.general, on=on, currency=currency, lines=drafts, source_type="revaluation",
            description=f"Revaluation of open {currency} balances at {rate_on(uow, currency, on)}",
            rate=rate_on(uow, currency, on)))
    return entries
