"""kill -9 mid-stream: every acknowledged event survives and the chain still verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import select

from joinedup.audit import AuditKeyStore, AuditLog
from joinedup.audit.models import events_table
from joinedup.storage.engine import Database

APPENDER = Path(__file__).with_name("appender.py")
ACKS_BEFORE_KILL = 300


def test_acknowledged_events_survive_kill_9(db: Database, audit_keys: AuditKeyStore) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen(
        [sys.executable, str(APPENDER), url, str(audit_keys.folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite
    watchdog.start()
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        while len(acked) < ACKS_BEFORE_KILL:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        assert len(acked) == ACKS_BEFORE_KILL, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer threads are still appending
        rest = proc.stdout.read()
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Whole lines only: a line cut by the kill is not an acknowledgement we can read.
    complete = rest.decode().split("\n")[:-1]
    acked += [int(x) for x in complete]
    with db.engine.connect() as conn:
        stored = set(conn.execute(select(events_table.c.seq)).scalars())
    missing = set(acked) - stored
    assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
    report = AuditLog(db, audit_keys).verify()
    assert report.ok, report.problem
    assert report.events >= len(set(acked))
