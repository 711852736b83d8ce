"""Shared helpers for the benchmark scripts in bench/ (not part of the application).

Each script: sets up Django, measures, prints a table, and rewrites its own
section of docs/benchmarks.md between ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->`` markers (other sections are left as they are).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
OUT_DIR = REPO / "bench" / "out"  # git-ignored: caches and raw outputs

DOC_HEADER = """# Benchmarks

Figures measured on the project's own machine by the scripts in `bench/`
(`make bench-webhook`, `make bench-retrieval`, `make bench-ingest`, `make bench-scifact`).
Each script rewrites only its own section below, with the machine, the commit and
the load on the machine at the time (other engineers' test runs share the 2 cores,
so figures are lower bounds of what an idle machine of this size does).

"""

SCIFACT_SECTION = """## SciFact nDCG@10

_Placeholder: filled by `python manage.py eval_retrieval --beir ../shared/data/beir/scifact --split train`
(`make bench-scifact`), run from the repository root; another engineer records the measured figure here._

| system | nDCG@10 (SciFact) | source |
| --- | ---: | --- |
| BM25 | 0.665 | BEIR paper (Thakur et al., 2021) |
| BM25 (Anserini) | 0.679 | Anserini BEIR regressions |
| all-MiniLM-L6-v2 (dense) | 0.645 | MTEB leaderboard |
| saas_bot hybrid (this repo) | _to be measured_ | `eval_retrieval --split train` |
"""


def django_setup(extra_env: dict[str, str] | None = None) -> None:
    """Put the repo on sys.path, apply ``extra_env`` (before settings are read) and set Django up."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    for key, value in (extra_env or {}).items():
        os.environ[key] = value
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas_bot.settings")
    import django

    django.setup()


def use_private_database(name: str) -> None:
    """Point Django at a fresh database ``name`` on the same server (dropped first if a crashed run left it).

    Call after :func:`django_setup` and before any query. The benchmark's rows then never mix with
    other people's data, and :func:`drop_private_database` removes everything in one statement.
    """
    import psycopg
    from django.conf import settings
    from django.db import connections

    db = settings.DATABASES["default"]
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"],
              "password": db["PASSWORD"] or None, "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    connections.close_all()
    db["NAME"] = name
    connections["default"].settings_dict["NAME"] = name


def drop_private_database(name: str) -> None:
    import psycopg
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    db = settings.DATABASES["default"]
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"],
              "password": db["PASSWORD"] or None, "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: list[float], q: float) -> float:
    """q-th percentile (0-100), linear interpolation (same as rag.evaluation.percentile)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=REPO).stdout.strip()
    except Exception:
        return "?"


def machine_info() -> dict[str, str]:
    """nproc, RAM, Python, PostgreSQL (+pgvector) version, UTC date, git commit (read-only git)."""
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    pg = "?"
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            pg = cursor.fetchone()[0]
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
            pg += f" + pgvector {row[0]}" if row else ""
        from django.conf import settings

        pg += " (embedded pgserver)" if getattr(settings, "EMBEDDED_DATABASE", False) else " (DATABASE_URL)"
    except Exception as exc:  # pragma: no cover - info only
        pg = f"? ({exc})"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cores": _run(["nproc"]),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "postgresql": pg,
        "date": _run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "commit": _run(["git", "rev-parse", "--short", "HEAD"]) + (" (+ uncommitted changes)" if dirty else ""),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def worktree_note() -> str:
    """The commit and the tracked files changed on top of it (read-only git), for the record."""
    changed = [line.split(None, 1)[1] for line in
               _run(["git", "status", "--porcelain", "--untracked-files=no"]).splitlines() if line.strip()]
    head = _run(["git", "rev-parse", "--short", "HEAD"])
    # git hash-object without -w only reads: it names the exact content that was measured.
    labelled = [f"`{c}` ({_run(['git', 'hash-object', c])[:10]})" for c in changed]
    return f"commit `{head}`" + (f" plus uncommitted changes to {', '.join(labelled)} (blob hashes of the "
                                 "measured content)" if changed else "")


def machine_lines(info: dict[str, str]) -> str:
    return (f"Machine: {info['cores']} cores, {info['ram']} RAM; Python {info['python']}; "
            f"PostgreSQL {info['postgresql']}. Run {info['date']} at commit `{info['commit']}`; "
            f"load average at start {info['loadavg']}.\n")


class CpuSampler:
    """Whole-machine CPU busy share between start() and stop(), from /proc/stat."""

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    def start(self) -> "CpuSampler":
        self.t0, self.i0 = self._read()
        self.load0 = os.getloadavg()[0]
        return self

    def stop(self) -> dict[str, float]:
        t1, i1 = self._read()
        total, idle = t1 - self.t0, i1 - self.i0
        return {"cpu_busy_pct": round(100 * (1 - idle / total), 1) if total else float("nan"),
                "load1_start": round(self.load0, 2), "load1_end": round(os.getloadavg()[0], 2)}


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, in ms (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_start_ticks(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def thread_oncpu_ns(pid: int) -> int:
    """Nanoseconds the process's main thread has run on a CPU (/proc/<pid>/schedstat; precise)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def postgres_backends(database: str) -> list[int]:
    """PIDs of the server's backends connected to ``database`` (children of the postmaster)."""
    from django.conf import settings

    data_dir = Path(settings.DATABASES["default"].get("HOST") or "")
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = []
    try:
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    except OSError:
        return []
    for child in children:
        try:
            title = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f" {database} " in f" {title} ":
            pids.append(int(child))
    return pids


def other_load() -> str:
    """Other heavy processes right now (pytest, celery, other benchmarks), for the record."""
    out = _run(["ps", "-eo", "pid,pcpu,etimes,args", "--sort=-pcpu"])
    me = os.getpid()
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split(None, 3)
        if len(parts) < 4 or int(parts[0]) == me:
            continue
        if float(parts[1]) >= 5.0 and "ps -eo" not in parts[3]:
            rows.append(f"{parts[3][:70]} ({parts[1]}% cpu)")
    return "; ".join(rows[:5]) or "none above 5% CPU"


def table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A Markdown table (also readable in a terminal)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(c) for c in r] for r in rows]
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines) + "\n"


def update_docs(name: str, body: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md in place (or append it at the end); every
    other line of the file, marked or not (hand-written readings and sections), is kept as it is.

    A section sits between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``; the SciFact
    placeholder is added when missing.
    """
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUT_DIR / "benchmarks.md.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = DOCS.read_text() if DOCS.exists() else DOC_HEADER
        text = _section_put(text, name, body)
        if "<!-- bench:scifact:start -->" not in text:
            text = _section_put(text, "scifact", SCIFACT_SECTION)
        DOCS.write_text(text)


def _section_put(text: str, name: str, body: str) -> str:
    import re

    block = f"<!-- bench:{name}:start -->\n{body.rstrip()}\n<!-- bench:{name}:end -->\n"
    found = re.search(rf"<!-- bench:{re.escape(name)}:start -->\n.*?<!-- bench:{re.escape(name)}:end -->\n?",
                      text, re.S)
    if found:
        return text[:found.start()] + block + text[found.end():]
    return text.rstrip() + "\n\n" + block


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
