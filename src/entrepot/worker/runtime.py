"""The worker loop: outbox → in-process reactions, webhook deliveries, NATS; periodic jobs.

`Worker.run_once()` does one pass of every step and returns how much it did,
so tests drive it step by step (with the simulated clock); `run_forever`
loops with a short idle sleep and backs off while the database is down.
`start_background_worker()` runs it in a thread of the API process
(embedded mode); `entrepot worker` runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import os
import queue
import select as selectmodule
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import make_url, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from entrepot.db.settings import get_settings
from entrepot.db.uow import platform_uow, tenant_uow
from entrepot.integration import delivery
from entrepot.integration.consumers import advance, lock_cursor, position_of, read_position
from entrepot.integration.feed import START, Position, events_after, latest
from entrepot.integration.http_client import Handoff
from entrepot.integration.models import WebhookEndpoint
from entrepot.integration.outbox import envelope
from entrepot.worker import leases, scheduler
from entrepot.worker.reactions import reacting_types, reactions_for

log = structlog.get_logger("entrepot.worker")
REACTIONS = "reactions"
REACTION_LEASE = timedelta(seconds=60)
MAX_REACTION_TRIES = 5
BATCH_WINDOW = 0.005  # seconds
STAGE_IDLE = 0.02  # seconds a fan-out or publishing thread pauses after a look that found nothing
ANALYZE_AFTER = 5000  # events fanned out before the first statistics refresh (then doubling)


class Worker:
    def __init__(
        self,
        *,
        url: str | None = None,
        worker_id: str | None = None,
        batch: int = 200,
        concurrency: int = 32,
        per_endpoint: int = delivery.PER_ENDPOINT,
        nats_url: str | None = None,
        scheduler_enabled: bool = True,
    ) -> None:
        self.url = url
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.batch = batch
        # a claim lasts long enough for two rounds of sends at the 15 s timeout
        self.claim_limit = min(batch, concurrency * 2)
        self.claim_lease = timedelta(seconds=float(os.environ.get("ENTREPOT_WORKER_CLAIM_LEASE_SECONDS", "60")))
        self.per_endpoint = per_endpoint
        self.scheduler_enabled = scheduler_enabled
        self.client = delivery.new_client(max_connections=concurrency)
        self.senders = Senders(self.client, concurrency)
        self._reaction_failures: dict[str, int] = {}
        self._rate: dict[uuid.UUID, tuple[int, int]] = {}  # endpoint → (second, sent)
        self._limits: tuple[float, dict[uuid.UUID, int]] = (0.0, {})
        self._last_schedule = 0.0
        self._leases: dict[str, float] = {}  # lease name → when to renew (monotonic)
        self._fanned = 0
        self._since_analyze = 0
        self._analyze_at = ANALYZE_AFTER
        self._analyzed = False
        self._last_idle_react = 0.0
        self._last_react = 0.0
        self._reacted = 0
        self._last_fan_out = 0.0
        self._fan_out_progress = delivery.FanOutProgress()
        self._published = 0
        self._last_publish = 0.0
        self.nats = None
        self._own_threads: set[str] = set()  # steps run_forever runs on threads of their own
        self._wake = threading.Event()  # set by the fan-out thread when it made new messages
        nats_url = nats_url if nats_url is not None else get_settings().nats_url
        if nats_url:
            from entrepot.worker.nats_bridge import NatsPublisher

            # a pass publishes at most one claim batch's worth when publishing runs on this loop's
            # thread (SQLite, tests): a NATS backlog must not hold up the webhook rounds between its
            # batches (on PostgreSQL `run_forever` gives it a thread of its own and larger batches)
            self.nats = NatsPublisher(nats_url, self.worker_id, url=url, hold=self._hold, batch=batch)
            self._loop = asyncio.new_event_loop()

    # --- steps ---

    def fan_out(self, *, eager: bool = True) -> int:
        # when idle, look for new events every 20 ms rather than on every pass: each look is a
        # write transaction (it locks the fan-out cursor)
        if not eager and not self._fanned and time.monotonic() - self._last_fan_out < 0.02:
            return 0
        with platform_uow(url=self.url) as uow:
            done = delivery.fan_out(uow.session, limit=self.batch * 5, progress=self._fan_out_progress)
            uow.commit()
        self._fanned = done
        self._last_fan_out = time.monotonic()
        self._since_analyze += done
        if self._since_analyze >= self._analyze_at:
            self._analyze()
        return done

    def _analyze(self) -> None:
        """Refresh the database's statistics of the delivery table after a burst of fan-out.

        PostgreSQL: a table that grew from a few rows to tens of thousands within the minute
        before autovacuum looks again gets plans made for a tiny table: the queue-head lookups
        then scan an endpoint's whole backlog per message. Each time the burst doubles, sample it.
        SQLite gathers none by itself, and without them its planner reads a queue's busy-head
        check off the (tenant, endpoint, status) index, every open message of the endpoint per
        fan-out pass. Once per worker is enough there: the statistics stay in the file, and the
        head index (at most one row per queue) wins at any table size they were taken at; a full
        ANALYZE reads the whole table, so it is not repeated as history grows.
        """
        self._since_analyze = 0
        self._analyze_at *= 2
        with platform_uow(url=self.url) as uow:
            dialect = uow.session.get_bind().dialect.name
            if dialect == "postgresql" or (dialect == "sqlite" and not self._analyzed):
                if dialect == "postgresql":
                    # a sample of 3,000 rows instead of 30,000: the plans here need the table's size
                    # and rough selectivities, not detailed histograms (this ran five times per
                    # 100,000 deliveries, at a tenth of the database's CPU meanwhile)
                    uow.session.execute(text("SET LOCAL default_statistics_target = 10"))
                uow.session.execute(text("ANALYZE webhook_messages"))
                uow.commit()
        self._analyzed = True

    def _rate_budget(self) -> dict[uuid.UUID, int]:
        loaded_at, limits = self._limits
        if time.monotonic() - loaded_at > 5:
            with platform_uow(readonly=True, url=self.url) as uow:
                limits = dict(uow.session.execute(
                    select(WebhookEndpoint.id, WebhookEndpoint.rate_limit)
                    .where(WebhookEndpoint.rate_limit.is_not(None), WebhookEndpoint.enabled.is_(True))).all())
            self._limits = (time.monotonic(), limits)
        second = int(time.time())
        budget = {}
        for endpoint_id, limit in limits.items():
            at, sent = self._rate.get(endpoint_id, (second, 0))
            budget[endpoint_id] = max(0, limit - (sent if at == second else 0))
        return budget

    def deliver(self, *, drain: bool = True) -> int:
        """Claim due messages and send them on the pool; record the finished ones.

        With `drain` (tests, `run_once`) it waits for every send it started;
        the long-running loop does not, so claiming, sending and recording
        overlap and the pool stays busy.
        """
        senders = self.senders
        senders.gather()
        finished, senders.finished = senders.finished, []
        room = self.claim_limit - senders.in_flight
        claimed: list[delivery.Claimed] = []
        recorded = 0
        if room > 0:
            # record what finished and claim the next in one transaction: one commit per round
            budget = self._rate_budget()
            try:
                claimed = self._record(finished, claim=room, budget=budget)
            except BaseException:
                senders.finished[:0] = finished  # not recorded: keep them for the next try
                raise
            recorded = len(finished)
            second = int(time.time())
            for item in claimed:
                at, sent = self._rate.get(item.endpoint_id, (second, 0))
                self._rate[item.endpoint_id] = (second, (sent if at == second else 0) + 1)
                senders.submit(item)
        else:
            senders.finished[:0] = finished
        if drain:
            senders.gather(wait=None)
        elif senders.in_flight:
            if not claimed and not recorded:
                senders.gather(wait=0.05, every=False)
            # let the sends of this round finish for a moment, so the next round records and
            # refills many slots in one transaction instead of one slot per transaction
            senders.gather(wait=BATCH_WINDOW)
        if not drain:
            # the next pass records what finished in the transaction of its claim (counted as work
            # here, so the loop comes back at once)
            return recorded + len(claimed) + len(senders.finished)
        done = senders.finished
        self._record(done)
        senders.finished = []
        return recorded + len(claimed) + len(done)

    def _record(self, outcomes: list[delivery.Outcome], *, claim: int = 0,
                budget: dict[uuid.UUID, int] | None = None) -> list[delivery.Claimed]:
        """Record `outcomes` and, with `claim`, claim up to that many more, in one transaction."""
        if not outcomes and not claim:
            return []
        for attempt in range(3):
            try:
                with platform_uow(url=self.url) as uow:
                    with delivery.round_pipeline(uow.session, outcomes):
                        delivery.begin_round(uow.session)
                        delivery.record(uow.session, outcomes)
                    claimed = delivery.claim(uow.session, self.worker_id, limit=claim, per_endpoint=self.per_endpoint,
                                             rate_budget=budget, lease=self.claim_lease) if claim else []
                    uow.commit()
                return claimed
            except StaleDataError:
                # an endpoint was edited through the API meanwhile: read it again
                if attempt == 2:
                    raise
        return []

    def react(self, *, eager: bool = True) -> int:
        """Run in-process reactions for the next events; at least once, in outbox order."""
        kinds = reacting_types()
        # nobody reacts to anything: just keep the cursor near the head, once a second; when the
        # last look found nothing, look again after 20 ms rather than on every pass (each look
        # reads the outbox)
        if not kinds and time.monotonic() - self._last_idle_react < 1.0:
            return 0
        if kinds and not eager and not self._reacted and time.monotonic() - self._last_react < 0.02:
            return 0
        if not self._hold(f"consumer:{REACTIONS}", REACTION_LEASE):
            return 0
        self._last_react = time.monotonic()
        with platform_uow(readonly=True, url=self.url) as uow:
            start = read_position(uow.session, REACTIONS) or START
            if not kinds:
                self._last_idle_react = time.monotonic()
                head = latest(uow.session)
                rows = []
            else:
                head = None
                rows = events_after(uow.session, start, limit=self.batch, types=kinds)
            items = [(r.tenant_id, r.type, envelope(r), Position.of(r)) for r in rows]
        if head is not None and start < head:
            with platform_uow(url=self.url) as uow:
                cursor = lock_cursor(uow.session, REACTIONS)
                assert cursor is not None
                if position_of(cursor) < head:
                    advance(cursor, head)
                uow.commit()
            return 0
        done_to: Position | None = None
        for tenant_id, kind, event, position in items:
            ok = True
            for reaction in reactions_for(kind):
                try:
                    with tenant_uow(tenant_id, url=self.url) as uow:
                        reaction(uow, event)
                        uow.commit()
                except Exception:
                    tries = self._reaction_failures.get(event["id"], 0) + 1
                    self._reaction_failures[event["id"]] = tries
                    log.exception("reaction_failed", event_id=event["id"], type=kind, tries=tries,
                                  reaction=getattr(reaction, "__name__", repr(reaction)))
                    if tries < MAX_REACTION_TRIES:
                        ok = False
                    break
            if not ok:
                break  # try again next pass; later events wait so order holds
            self._reaction_failures.pop(event["id"], None)
            done_to = position
        if done_to is not None:
            with platform_uow(url=self.url) as uow:
                cursor = lock_cursor(uow.session, REACTIONS)
                assert cursor is not None
                if position_of(cursor) < done_to:
                    advance(cursor, done_to)
                uow.commit()
        self._reacted = len(items) if done_to else 0
        return self._reacted

    def _hold(self, name: str, ttl: timedelta) -> bool:
        """Hold a lease, renewing it in the database only when a third of it has run out."""
        renew_at = self._leases.get(name)
        if renew_at is not None and time.monotonic() < renew_at:
            return True
        if leases.acquire(name, self.worker_id, ttl, url=self.url):
            self._leases[name] = time.monotonic() + ttl.total_seconds() / 3
            return True
        self._leases.pop(name, None)
        return False

    def publish(self, *, eager: bool = True) -> int:
        if self.nats is None:
            return 0
        # when the last look found nothing, look again after 20 ms rather than on every pass
        if not eager and not self._published and time.monotonic() - self._last_publish < 0.02:
            return 0
        self._published = self._loop.run_until_complete(self.nats.publish_batch())
        self._last_publish = time.monotonic()
        return self._published

    def schedule(self, *, force: bool = False) -> list[str]:
        if not self.scheduler_enabled:
            return []
        if not force and time.monotonic() - self._last_schedule < 1.0:
            return []
        self._last_schedule = time.monotonic()
        return scheduler.run_due(self.worker_id, url=self.url)

    # --- loops ---

    def run_once(self, *, drain: bool = True) -> int:
        work = self.react(eager=drain)
        if "fan_out" not in self._own_threads:
            work += self.fan_out(eager=drain)
        work += self.deliver(drain=drain)
        if "publish" not in self._own_threads:
            work += self.publish(eager=drain)
        if "schedule" not in self._own_threads:
            self.schedule()
        return work

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        total = 0
        for _ in range(max_rounds):
            done = self.run_once()
            total += done
            if not done:
                break
        return total

    def run_forever(self, stop: threading.Event, idle: float = 0.05) -> None:
        """Loop until `stop` is set.

        On PostgreSQL the fan-out and the NATS publishing run on threads of their own, each
        with its own connection, so the delivery rounds do not wait for them (nor they for
        the rounds). On SQLite, one writer at a time, those steps run on this thread. On both,
        the scheduled jobs run on a thread of their own: a job may run for minutes (the nightly
        invoicing of every tenant), and the rounds must meanwhile record what they sent before
        their claims run out (another worker would send those messages again) and go on sending.
        """
        stages: list[tuple[str, Any, float]] = []
        if self._pipelined():
            stages.append(("fan_out", self._fan_out_stage, STAGE_IDLE))
            if self.nats is not None:
                # its own thread: no round waits for a batch, so a batch may be larger
                self.nats.batch = max(self.nats.batch, self.batch * 5)
                stages.append(("publish", self.publish, STAGE_IDLE))
        if self.scheduler_enabled:
            stages.append(("schedule", self.schedule, 1.0))  # it looks for due jobs once a second
        halt = threading.Event()
        threads = [threading.Thread(target=_repeat, args=(step, halt, idle), name=f"worker-{name}", daemon=True)
                   for name, step, idle in stages]
        self._own_threads = {name for name, _, _ in stages}
        for thread in threads:
            thread.start()
        try:
            wake = self._wake if "fan_out" in self._own_threads else None
            _repeat(lambda: self.run_once(drain=False), stop, idle, wake=wake)
        finally:
            halt.set()
            scheduling = [t for t in threads if t.name == "worker-schedule"]
            for thread in threads:
                if thread not in scheduling:
                    thread.join()
            if any(t.is_alive() for t in scheduling):
                # a job is still running: record what was sent before waiting for it to end, or
                # those claims could run out meanwhile and another worker send them again
                try:
                    self._record_sent()
                except Exception:  # release() records what is left once the job is done
                    log.exception("record_failed")
            for thread in scheduling:
                thread.join()
            self._own_threads = set()

    def _fan_out_stage(self) -> int:
        done = self.fan_out()
        if done:
            self._wake.set()  # new messages: the delivery loop need not finish its idle pause
        return done

    def _pipelined(self) -> bool:
        return make_url(self.url or get_settings().database_url).get_backend_name() == "postgresql"

    def _record_sent(self) -> None:
        """Wait for the sends in flight and record how each went."""
        self.senders.gather(wait=delivery.TIMEOUT_SECONDS + 5)
        done, self.senders.finished = self.senders.finished, []
        self._record(done)

    def release(self) -> None:
        """Finish the sends in flight, then give back unfinished claims and leases (graceful shutdown)."""
        try:
            self._record_sent()
            with platform_uow(url=self.url) as uow:
                delivery.release(uow.session, self.worker_id)
                uow.commit()
            leases.release(f"consumer:{REACTIONS}", self.worker_id, url=self.url)
            self._leases.clear()
            if self.nats is not None:
                leases.release("consumer:nats", self.worker_id, url=self.url)
                self._loop.run_until_complete(self.nats.close())
        except Exception:
            log.exception("release_failed")
        finally:
            self.senders.stop()
            self.client.close()


def _repeat(step: Any, stop: threading.Event, idle: float, *, wake: threading.Event | None = None) -> None:
    """Run `step` until `stop`, pausing `idle` (or until `wake`) when it did nothing; back off
    while the database is down."""
    backoff = 0.5
    while not stop.is_set():
        try:
            done = step()
            backoff = 0.5
        except (OperationalError, DBAPIError) as exc:
            log.warning("database_unavailable", error=str(exc)[:200], retry_in=backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        except Exception:
            log.exception("worker_step_failed")
            stop.wait(1.0)
            continue
        if not done:
            if wake is None:
                stop.wait(idle)
            else:
                wake.wait(idle)
                wake.clear()


class Senders:
    """The worker's webhook POSTs, up to `threads` at once; their outcomes gathered in `finished`.

    One I/O thread writes the POSTs on idle kept-alive connections and reads their answers as
    they come (a poll over the connections in flight), and hands the worker's thread its
    outcomes a batch at a time: a round's sends cost two hand-offs between threads, where a
    thread per POST cost four per delivery (a wake-up of a sender, its turn at the GIL, a queue
    each way), more CPU than the exchange itself. What could block (opening a connection, an
    answer whose end only the connection's close or its chunks tell, a host to resolve) goes to
    helper threads, one POST each as before, whose outcomes come back through the I/O thread.
    """

    def __init__(self, client: Any, threads: int) -> None:
        self.client = client
        self.size = threads
        self.in_flight = 0  # submitted, outcome not yet gathered
        self.finished: list[delivery.Outcome] = []  # gathered, not yet recorded
        self._submitted: list[delivery.Claimed] = []  # not yet handed to the I/O thread
        self._done: queue.SimpleQueue[list[delivery.Outcome | None]] = queue.SimpleQueue()
        self._io: threading.Thread | None = None
        # the I/O thread's: what it is told (new POSTs, helpers' outcomes), what it has under way
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake_r = self._wake_w = -1
        self._poll: Any = None
        self._waiting: collections.deque[delivery.Claimed] = collections.deque()  # no free slot yet
        self._open: dict[int, delivery.Sending] = {}  # by socket
        self._threaded = 0  # on the helper threads
        self._stopping = False
        self._todo: queue.SimpleQueue[Any] = queue.SimpleQueue()  # Claimed, or (Sending, resume)
        self._helpers: list[threading.Thread] = []

    def submit(self, item: delivery.Claimed) -> None:
        """Queue `item`; it goes out at the next `gather` (a round's POSTs in one hand-off)."""
        self.in_flight += 1
        self._submitted.append(item)

    def gather(self, wait: float | None = 0.0, *, every: bool = True) -> None:
        """Move finished outcomes to `finished`: those there now, after waiting up to `wait`
        seconds (None: no limit) for every send in flight, or with `every=False` for the first."""
        if self._submitted:
            self._tell(self._submitted)
            self._submitted = []
        deadline = None if wait is None else time.monotonic() + wait
        while self.in_flight:
            timeout = None if deadline is None else deadline - time.monotonic()
            try:
                outcomes = self._done.get(timeout is None or timeout > 0, timeout)
            except queue.Empty:
                return
            self.in_flight -= len(outcomes)
            self.finished.extend(o for o in outcomes if o is not None)
            if not every:
                deadline = 0.0  # the first is in: take the others already there, wait no more

    def stop(self) -> None:
        if self._io is not None:
            self._tell(None)
            self._io.join()
            self._io = None
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _tell(self, message: Any) -> None:
        """Hand the I/O thread new POSTs (a list), a helper's outcome (a tuple) or None (stop)."""
        if self._io is None:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            self._poll = selectmodule.poll()  # (POSIX; the worker runs on Linux)
            self._poll.register(self._wake_r, selectmodule.POLLIN)
            self._stopping = False
            self._io = threading.Thread(target=self._run_io, name="webhook-io", daemon=True)
            self._io.start()
        self._inbox.put(message)
        os.write(self._wake_w, b"!")

    # --- on the I/O thread ---

    def _run_io(self) -> None:
        while not self._stopping:
            out: list[delivery.Outcome | None] = []
            try:
                self._io_step(out)
            except Exception:
                # a bug here must not stop the sends (the worker would stall with every slot taken)
                log.exception("webhook_io_failed")
                time.sleep(0.1)
            if out:
                self._done.put(out)
        for _ in self._helpers:
            self._todo.put(None)
        for helper in self._helpers:
            helper.join()
        self._helpers, self._threaded = [], 0
        for fd, sending in list(self._open.items()):
            self._close(fd)
            sending.exchange.sock.close()

    def _io_step(self, out: list[delivery.Outcome | None]) -> None:
        """Wait for answers or news, then gather what came into `out` and start what may start."""
        timeout = None
        if self._open:
            soonest = min(s.exchange.deadline for s in self._open.values())
            timeout = max(0.0, soonest - time.monotonic()) * 1000
        for fd, _ in self._poll.poll(timeout):
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 4096)
            else:
                self._read(fd, out)
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                break
            if message is None:
                self._stopping = True
            elif isinstance(message, list):
                self._waiting.extend(message)
            else:  # a helper's outcome
                self._threaded -= 1
                out.append(message[0])
        if self._open:
            self._expire(out)
        if not self._stopping:
            self._start_waiting(out)

    def _start_waiting(self, out: list[delivery.Outcome | None]) -> None:
        while self._waiting and len(self._open) + self._threaded < self.size:
            item = self._waiting.popleft()
            try:
                started = delivery.start_send(self.client, item)
            except Exception:
                log.exception("webhook_send_failed", message_id=str(item.message_id))
                out.append(None)  # as a helper's bug below: claimed until its lease runs out
                continue
            if started is None:
                self._to_helper(item)
            elif isinstance(started, delivery.Outcome):
                out.append(started)
            else:
                fd = started.exchange.sock.fileno()
                self._open[fd] = started
                self._poll.register(fd, selectmodule.POLLIN)

    def _read(self, fd: int, out: list[delivery.Outcome | None]) -> None:
        sending = self._open.get(fd)
        if sending is None:
            return
        try:
            response = self.client.feed(sending.exchange)
        except Handoff as handoff:
            self._close(fd)
            self._to_helper((sending, handoff.resume))
            return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._close(fd)
            out.append(delivery.finish_send(sending, error=exc))
            return
        except Exception:
            self._close(fd)
            sending.exchange.sock.close()
            log.exception("webhook_send_failed", message_id=str(sending.item.message_id))
            out.append(None)
            return
        if response is not None:
            self._close(fd)
            out.append(delivery.finish_send(sending, response))

    def _expire(self, out: list[delivery.Outcome | None]) -> None:
        now = time.monotonic()
        for fd in [fd for fd, s in self._open.items() if s.exchange.deadline <= now]:
            sending = self._open[fd]
            self._close(fd)
            sending.exchange.sock.close()
            out.append(delivery.finish_send(sending, error=TimeoutError()))

    def _close(self, fd: int) -> None:
        """Stop watching `fd` (its exchange is over here; `feed` kept or closed its connection)."""
        del self._open[fd]
        self._poll.unregister(fd)

    def _to_helper(self, job: Any) -> None:
        if not self._helpers:  # started on first use
            self._helpers = [threading.Thread(target=self._run_helper, name=f"webhook-{i}", daemon=True)
                             for i in range(self.size)]
            for helper in self._helpers:
                helper.start()
        self._threaded += 1
        self._todo.put(job)

    # --- on a helper thread ---

    def _run_helper(self) -> None:
        while (job := self._todo.get()) is not None:
            outcome: delivery.Outcome | None = None
            try:
                if isinstance(job, delivery.Claimed):
                    outcome = delivery.send(self.client, job)
                else:
                    sending, resume = job
                    outcome = delivery.finish_send(sending, resume=resume)
            except Exception:
                # send() answers every network failure with an outcome; anything else is a bug:
                # the message stays claimed until its lease runs out, then goes out again
                log.exception("webhook_send_failed")
            self._inbox.put((outcome,))
            os.write(self._wake_w, b"!")


class BackgroundWorker:
    """A worker on a daemon thread; `stop()` lets the current pass finish, then releases claims."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="entrepot-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run_forever(self._stop)
        finally:
            self.worker.release()

    def start(self) -> BackgroundWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


def start_background_worker(**options: Any) -> BackgroundWorker:
    """Embedded mode (`entrepot serve`): the worker runs beside the API in this process."""
    return BackgroundWorker(Worker(**options)).start()
