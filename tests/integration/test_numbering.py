"""Document numbers: gapless per tenant and sequence, safe under concurrency."""

import threading

from entrepot.db.numbering import next_number
from tests.conftest import make_tenant


def test_numbers_are_per_tenant_and_sequence(tenant, other_tenant):
    with tenant.uow() as uow:
        assert next_number(uow, "SO") == "SO-000001"
        assert next_number(uow, "SO") == "SO-000002"
        assert next_number(uow, "INV") == "INV-000001"
        uow.commit()
    with other_tenant.uow() as uow:
        assert next_number(uow, "SO") == "SO-000001"


def test_a_rolled_back_number_is_reused(tenant):
    with tenant.uow() as uow:
        assert next_number(uow, "INV") == "INV-000001"
        # no commit: rolled back
    with tenant.uow() as uow:
        assert next_number(uow, "INV") == "INV-000001"


def test_parallel_transactions_get_no_duplicates_and_no_gaps(pg_url):
    # given 16 threads taking 20 numbers each, a third of the transactions rolled back
    tenant = make_tenant(pg_url)
    committed: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def take(worker: int) -> None:
        try:
            for i in range(20):
                with tenant.uow() as uow:
                    number = next_number(uow, "SO")
                    if (worker + i) % 3 == 0:
                        continue  # rollback
                    uow.commit()
                    with lock:
                        committed.append(number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then the committed numbers are exactly 1..N
    assert errors == []
    values = sorted(int(n.split("-")[1]) for n in committed)
    assert values == list(range(1, len(values) + 1))
    assert len(set(committed)) == len(committed)
