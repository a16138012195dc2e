"""Where ``prep-and-retalk`` sends its jobs: the service the options and the environment
name, or (``--emulator``) an emulator this command starts beside the journal, on the port
it had before, so that a second run of the same job finds its task and does not pay twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from preflight import lock_exclusive, printable

from .._exceptions import ConfigError
from .._http import Client, PollPolicy
from .._journal import Journal, default_path
from ..emulator import Emulator, Faults
from .options import download_policy

#: The key the built-in emulator takes (it is not a secret: nothing leaves this machine).
EMULATOR_KEY = "emulator-key"


#: Quick emulated tasks, no submit pacing.
EMULATOR_FAULTS = Faults(task_seconds=0.5, submit_interval_s=0.0)


def service(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[Callable[[], Client], str | Path | None, Emulator | None]:
    """How to make a client for this run, where its journal is, and the emulator this
    command starts (``--emulator``; None for the service the options and environment name)."""
    bounds = download_policy(args)  # a wrong bound is said before any work
    if not args.emulator:
        Client(base_url=args.base_url).close()  # the key and the URL, checked before any work
        return (lambda: Client(base_url=args.base_url, download_policy=bounds)), args.journal, None
    journal: str | Path = args.journal or default_path()
    shared = _emulator_root(Path(journal))
    emulator = _journaled_emulator(shared, stack)
    if emulator is None:
        # Another run has this journal's emulator: this one gets a throwaway of its own.
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="retalk-emulator-")))
        emulator = stack.enter_context(Emulator(root, api_key=EMULATOR_KEY, faults=EMULATOR_FAULTS))
        busy = printable(str(shared))
        journal = root / "journal.sqlite"
        print(
            f"prep-and-retalk: note: another --emulator run is using {busy}; this run is not "
            "journaled (run it again alone to have it journaled)",
            file=sys.stderr,
        )
    poll = PollPolicy(steps=(0.25,), cap_s=0.5)
    url = emulator.base_url
    make = lambda: Client(EMULATOR_KEY, base_url=url, poll=poll, download_policy=bounds)  # noqa: E731
    return make, journal, emulator


def tidy(emulator: Emulator, journal: Journal) -> None:
    """The emulator's copies of results its journal's jobs have downloaded are deleted (the
    folder would keep every one forever); the parts of a split still running are kept."""
    url = emulator.base_url
    keep = {i for split in journal.running_splits(url) for i in split.job_ids if i is not None}
    for job in journal.jobs(limit=1_000_000):
        if job.base_url == url and job.state == "downloaded" and job.task_id and job.id not in keep:
            emulator.discard(job.task_id)


def _emulator_root(journal: Path) -> Path:
    """Where the emulator of runs journaled in ``journal`` keeps its tasks and its port."""
    return journal.with_name(journal.name + ".emulator")


def _journaled_emulator(root: Path, stack: ExitStack) -> Emulator | None:
    """The emulator of a journal's runs (``root``: ``_emulator_root``), started on its own
    root and on the port it had before, so that its tasks keep the base URL the journal
    knows them by (a second run of the same job finds it there, not paid twice). None when
    another run holds it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # the journal's path under a file, a folder not ours
        raise ConfigError(
            f"--emulator keeps its tasks next to the journal, in {root}: {exc.strerror or exc}; "
            "give a journal in a folder you can write in (--journal FILE or RETALK_JOURNAL)"
        ) from None
    stack.callback(os.close, lock)
    if not lock_exclusive(lock, wait=False):
        return None
    port_file = root / "port"
    try:
        port = int(port_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        port = 0
    try:
        emulator = Emulator(root, port=port, api_key=EMULATOR_KEY, faults=EMULATOR_FAULTS).start()
    except OSError:
        # The port is taken by another program: a new one (the jobs journaled at the old
        # one are then not recognised by a run of the same inputs).
        emulator = Emulator(root, api_key=EMULATOR_KEY, faults=EMULATOR_FAULTS).start()
    stack.callback(emulator.stop)
    port_file.write_text(str(urllib.parse.urlsplit(emulator.origin).port), encoding="ascii")
    return emulator
