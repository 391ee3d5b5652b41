"""WAL checkpoints for the SQLite store, in a thread of their own.

SQLite checkpoints inside the commit that crosses ``wal_autocheckpoint`` pages (1,000 by
default): that commit then copies the whole WAL back into the database and fsyncs it,
several milliseconds during which the committing thread waits. The store commits most
ingests on the event loop's thread (see ``SQLiteStore._hand_over``), so it turns
autocheckpoint off on its writer connection and copies the WAL back from here instead,
once a second by default, on a connection of its own (a page written many times in that
second, such as an index's last leaf, is copied once).
"""

from __future__ import annotations

import sqlite3
import threading


class Checkpointer:
    """Copies the WAL back every ``every_s`` seconds until ``stop()``.

    The bulk is copied while commits go on (``PASSIVE`` never blocks a writer); the few
    frames appended meanwhile are then copied with the writer connection's lock held, so
    that no commit lands in between and the next one can start the WAL file over from its
    beginning (under a steady load it would otherwise only grow)."""

    def __init__(self, conn: sqlite3.Connection, writer_lock: threading.Lock,
                 every_s: float) -> None:
        self.errors = 0
        self._conn = conn
        self._lock = writer_lock
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (blocking: call it from a worker thread)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = self._conn
        try:
            while not self._stop.wait(self._every_s):
                try:
                    # fetchall: a statement left unfinished would keep a read snapshot
                    # open, and the WAL could not start over.
                    rows = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    if rows and rows[0][1] > 0:
                        with self._lock:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    self.errors += 1
        finally:
            conn.close()
