"""Run by test_kill.py as a separate process: append audit events from several threads,
printing each acknowledged seq on its own line, until killed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from joinedup.audit import Actor, AuditAction, AuditConfig, AuditEvent, AuditKeyStore, AuditLog
from joinedup.audit.events import Outcome
from joinedup.storage.engine import Database


def main(url: str, keys_dir: str, threads: int = 8) -> None:
    log = AuditLog(Database.from_url(url), AuditKeyStore(Path(keys_dir)),
                   AuditConfig(checkpoint_every_events=50))
    out = threading.Lock()

    def run(n: int) -> None:
        i = 0
        while True:
            i += 1
            [seq] = log.append([AuditEvent(
                action=AuditAction.RECORD_READ, actor=Actor("RWX", "rwx-epr", f"RWX-P{n}"),
                outcome=Outcome.PERMIT, persons=(f"P-{n}-{i}",), purpose="direct-care")])
            with out:
                sys.stdout.write(f"{seq}\n")
                sys.stdout.flush()

    for n in range(threads):
        threading.Thread(target=run, args=(n,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
