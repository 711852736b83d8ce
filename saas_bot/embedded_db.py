"""Embedded PostgreSQL 16 + pgvector for the default, service-free set-up.

When ``DATABASE_URL`` is unset, settings call :func:`embedded_database_settings`,
which starts (or reuses) a PostgreSQL server from the ``pgserver`` package with
its data under ``var/pgdata``. The server listens on a Unix socket only. It is
shared by every process of the project (web, worker, commands, tests) and is
stopped by pgserver when the last process that opened it exits.
"""
from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

DATABASE_NAME = "saas_bot"


def embedded_database_settings(*, var_dir: Path, name: str = DATABASE_NAME) -> dict[str, Any]:
    """Start or reuse the embedded server and return a Django ``DATABASES`` entry.

    Args:
        var_dir: the project's runtime folder; the cluster lives in ``var_dir / "pgdata"``.
        name: the application database, created on first use.

    Returns:
        A dict for ``DATABASES["default"]`` (ENGINE, NAME, USER, HOST=socket folder).

    Raises:
        subprocess.CalledProcessError / TimeoutExpired: pgserver could not start
        PostgreSQL; its log is in ``var_dir / "pgdata" / "log"``.
    """
    import warnings

    # platformdirs warns on every start when XDG_RUNTIME_DIR is unset (servers, CI); pgserver then
    # uses /tmp/runtime-<uid> for its lock file, which is what we want.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver  # imported here: only the embedded default needs it
    import psycopg

    var_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(var_dir / "pgdata", cleanup_mode="stop")
    # pgserver stops the server when the last process on its handle list exits, but a process that
    # was killed (SIGKILL) never leaves the list, and the server would then run forever. Registered
    # after pgserver's own exit hook, this one runs first and drops the dead from the list.
    atexit.register(_forget_dead_handles, server)
    info = server.get_postmaster_info()
    host = str(info.socket_dir)
    with psycopg.connect(host=host, dbname="postgres", user="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": host,
        "PORT": "",
    }


def _forget_dead_handles(server) -> None:
    """Keep only live processes (and this one) on pgserver's handle list (``.handle_pids.json``)."""
    import psutil

    try:
        with server._lock:
            handles = server.global_process_id_list
            alive = [pid for pid in handles.get() if pid == os.getpid() or psutil.pid_exists(pid)]
            handles.put(alive)
    except Exception:  # never block interpreter exit over housekeeping
        pass
