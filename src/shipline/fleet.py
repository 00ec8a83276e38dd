"""Several hosts, one release: the batch runner above the per-host deployer.

Every host is prepared first, in parallel (files uploaded, images pulled): a host that cannot pull stops the
deploy before anything switched. Then the hosts switch batch after batch (`deploy.batch`, the first batch being
the canary), the hosts of a batch in parallel, each batch behind a health barrier (and `deploy.batch_wait`
seconds of watching before the next). Migrations run once, on one host, before any new container starts
anywhere. Old containers stay until every batch is live, so a failure on any host is undone everywhere by
switching back: the fleet never ends up split across two releases. Only then are the old ones retired.

The caller holds every host's lock throughout (pipeline.holding_locks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from .cancel import Cancel
from .deployer import HostDeployer, describe
from .errors import ConnectionLost, DeployFailed, ShiplineError
from .ledger import Record
from .plan import DeployPlan
from .reporter import Reporter
from .secrets import Secret

T = TypeVar("T")
Prepare = Callable[[HostDeployer], dict[str, str]]  # puts the release's files on a host; returns their digests


def each(hosts: Sequence[HostDeployer], fn: Callable[[HostDeployer], T]) -> list[tuple[HostDeployer, T | None, BaseException | None]]:
    """`fn` on every host at once; (host, result, error) in the hosts' order. Never raises for a host's error."""

    def one(h: HostDeployer) -> tuple[HostDeployer, T | None, BaseException | None]:
        try:
            return h, fn(h), None
        except BaseException as exc:  # collected: the caller undoes the others before raising it
            return h, None, exc

    if len(hosts) <= 1:
        return [one(h) for h in hosts]
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(one, hosts))


def check_locks(hosts: Sequence[HostDeployer]) -> None:
    """Stop here if the run was cancelled or any host's lock was lost (its connection dropped)."""
    for h in hosts:
        h.check_lock()


def first_error(results: Sequence[tuple[HostDeployer, object, BaseException | None]]) -> BaseException | None:
    """The error to report: a lost host or an interrupt before an ordinary failure."""
    errors = [e for _, _, e in results if e is not None]
    for kind in (KeyboardInterrupt, ConnectionLost):
        found = next((e for e in errors if isinstance(e, kind)), None)
        if found is not None:
            return found
    return errors[0] if errors else None


class Rollout:
    """One release going live on every host of the plan."""

    def __init__(self, hosts: list[HostDeployer], plan: DeployPlan, report: Reporter, *,
                 cancel: Cancel | None = None, sleep: Callable[[float], None] | None = None) -> None:
        self.hosts, self.plan, self.report = hosts, plan, report
        self.cancel = cancel or Cancel()
        self.sleep = sleep or self.cancel.sleep
        self.previous: dict[str, int | None] = {}
        self.keep: dict[str, set[str]] = {}  # per host: the services unchanged since the live release
        self.switched: list[HostDeployer] = []

    def stage(self, record: Record, put_files: Prepare) -> None:
        """What needs no image yet, on every host in parallel, while the images are built and tested."""
        self._raise(each(self.hosts, lambda h: h.stage(record.number, put_files)), "Staging the release")

    def _raise(self, results: Sequence[tuple[HostDeployer, object, BaseException | None]], what: str) -> None:
        error = first_error(results)
        if error is not None:
            failed = [h.name for h, _, e in results if e is not None]
            if isinstance(error, ShiplineError) and len(self.hosts) > 1:
                raise type(error)(f"{error.message} {what} failed on {', '.join(failed)}; no host switched.") from None
            raise error

    def prepare(self, record: Record, put_files: Prepare, images: dict[str, str],
                login: tuple[tuple[str, ...], Secret] | None) -> None:
        """Upload and pull on every host in parallel; nothing switches yet."""
        start = time.monotonic()

        def one(h: HostDeployer) -> None:
            live = h.live()
            self.previous[h.name] = live.number if live else None
            digests, files, states = h.prepare(record.number, put_files, images, login)
            h.pending = replace(record, digests=digests, files=files, services={s: st.as_dict() for s, st in states.items()})
            self.keep[h.name] = h.unchanged(states)

        self._raise(each(self.hosts, one), "Preparing")
        if len(self.hosts) > 1:
            self.report.info(f"{len(self.hosts)} hosts prepared in parallel in {time.monotonic() - start:.1f}s")

    def switch(self, number: int) -> None:
        """Batch after batch, each behind its health barrier; any failure switches every host back."""
        try:
            for n, batch in enumerate(self.plan.batches, start=1):
                self._batch(n, [self.hosts[i] for i in batch], number)
        except BaseException as exc:
            self._undo_all(exc)

    def _batch(self, n: int, group: list[HostDeployer], number: int) -> None:
        total = len(self.plan.batches)
        label = f"batch {n}/{total}" + (" (canary)" if n == 1 and total > 1 else "")
        if total > 1:
            self.report.info(f"{label}: switching {', '.join(h.name for h in group)}")
        migrator = self.plan.migration_host
        first = [h for h in group if migrator is not None and h is self.hosts[migrator]]
        for h in first:  # migrations before any new container starts on another host
            self._roll(h, number, migrate=True)
        results = each([h for h in group if h not in first], lambda h: self._roll(h, number, migrate=False))
        error = first_error(results)
        if error is not None:
            raise error
        if total > 1 and n < total and self.plan.batch_wait:
            self.report.info(f"{label}: watching for {self.plan.batch_wait:g}s before the next batch")
            self.sleep(self.plan.batch_wait)
        error = first_error(each(group, lambda h: h.confirm()))  # the barrier: still healthy after switching
        if error is not None:
            raise error
        if total > 1:
            self.report.info(f"{label}: live and healthy on {', '.join(h.name for h in group)}")

    def _roll(self, h: HostDeployer, number: int, *, migrate: bool) -> None:
        try:
            h.roll_out(number, self.previous.get(h.name), self.keep.get(h.name, set()), migrate=migrate)
        finally:
            if h.applied:
                self.switched.append(h)  # roll_out undid its own host on failure; a success may need undoing later

    def _undo_all(self, exc: BaseException) -> None:
        """Switch back every host that completed its switch, then raise what went wrong."""
        done = [h for h in self.switched if h.applied and not h.undone]
        restored = True
        if done:
            names = ", ".join(h.name for h in done)
            self.report.warn(f"{describe(exc)}; switching back {names}, which had switched")
            with self.cancel.shielded():  # a second Ctrl-C must not leave the fleet split
                for _, ok, error in each(done, lambda h: h.undo(self.previous.get(h.name))):
                    restored = restored and ok is True and error is None
        if isinstance(exc, KeyboardInterrupt | ConnectionLost) or not isinstance(exc, ShiplineError):
            raise exc
        if len(self.hosts) == 1:
            raise exc
        previous = {self.previous.get(h.name) for h in self.hosts}
        where = (f"release {previous.pop()} is serving on every host" if restored and len(previous) == 1
                 else "the hosts were switched back as far as possible; `shipline status` shows what each runs")
        raise DeployFailed(f"{exc.message} {'Hosts that had switched went back: ' if done else 'No host had switched: '}"
                           f"{where}.") from None

    def retire(self) -> None:
        """Every batch is live: drain and stop the old containers everywhere, in parallel."""

        def one(h: HostDeployer) -> None:
            try:
                h.retire()
            except ShiplineError as exc:  # every service is switched: the release is live whatever happens to the old
                h.report.warn(f"{h.name}: release {h.pending.number if h.pending else '?'} is live, but stopping the "
                              f"old containers failed ({exc.message}); the next deploy stops them")
                if isinstance(exc, ConnectionLost):
                    h.recover()  # so that the release's end can be recorded

        for _, _, error in each(self.hosts, one):
            if error is not None:
                raise error
