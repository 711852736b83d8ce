"""The extraction child process: reads requests on stdin, answers on stdout, one document at a time.

Started by ``rag.extraction.sandbox`` as ``python -I -c BOOTSTRAP REPO MEMORY_MB``; never imported by the
web or worker processes. It imports no Django (the bootstrap stubs the ``saas_bot`` package so that
``saas_bot.errors`` loads without the Celery app) and limits its own address space (RLIMIT_AS) before
reading anything. Before each document it moves its CPU-time limit (RLIMIT_CPU) to "used so far +
that document's allowance": the kernel stops it with SIGXCPU past the allowance, SIGKILL 5 s later.

Frames, both ways: 4-byte big-endian length + UTF-8 JSON header, then the header's ``blobs`` (byte
lengths) of raw bytes. Request header: ``{"file_name", "bounds", "cpu_seconds", "blobs": [data,
include...], "includes": [names]}``. Answer: ``{"ok": true, "result": Extracted.to_dict()}`` or
``{"ok": false, "error": {"kind", "code", "message"}}``.
"""
from __future__ import annotations

import json
import struct
import sys

BOOTSTRAP = (
    "import sys, types\n"
    "repo = sys.argv[1]\n"
    "sys.path.insert(0, repo)\n"
    "package = types.ModuleType('saas_bot')\n"
    "package.__path__ = [repo + '/saas_bot']\n"
    "sys.modules['saas_bot'] = package\n"
    "from rag.extraction.worker import main\n"
    "main(sys.argv[2:])\n"
)


def read_frame(stream) -> tuple[dict, list[bytes]] | None:
    """One frame from ``stream`` (None at end of file)."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (length,) = struct.unpack(">I", head)
    header = json.loads(stream.read(length).decode("utf-8"))
    blobs = [stream.read(size) for size in header.get("blobs", [])]
    return header, blobs


def write_frame(stream, header: dict, blobs: list[bytes] = ()) -> None:
    header = dict(header, blobs=[len(b) for b in blobs])
    body = json.dumps(header).encode("utf-8")
    stream.write(struct.pack(">I", len(body)) + body)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def _peak_address_space() -> int:
    """VmPeak of this process in bytes (what RLIMIT_AS is checked against), 0 when unknown."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(argv: list[str]) -> None:
    import logging
    import math
    import resource

    memory_bytes = int(argv[0]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    logging.basicConfig(level=logging.ERROR)  # parsers' warnings about sloppy files are not news
    # Imported before the first document, so its CPU allowance is spent on the document only.
    from rag.extraction import core, docx, html, markdown, pdf, rst, text  # noqa: F401
    from rag.extraction.base import Bounds, ValidationFailed

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    write_frame(stdout, {"ready": True})
    while True:
        frame = read_frame(stdin)
        if frame is None:
            return
        header, blobs = frame
        used = resource.getrusage(resource.RUSAGE_SELF)
        allowance = max(1, int(header["cpu_seconds"]))
        # Only the soft limit moves (raising a hard limit needs a privilege); past it the kernel sends
        # SIGXCPU, whose default action ends the process. The parent's wall-clock wait is the backstop.
        soft = math.ceil(used.ru_utime + used.ru_stime) + allowance
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))
        try:
            includes = dict(zip(header.get("includes", []), blobs[1:]))
            extracted = core.extract(file_name=header["file_name"], data=blobs[0], includes=includes,
                                     bounds=Bounds(**header["bounds"]))
            answer = {"ok": True, "result": extracted.to_dict()}
        except ValidationFailed as exc:
            answer = {"ok": False, "error": {"kind": type(exc).__name__, "code": exc.code, "message": exc.message}}
            if exc.code == "document_unreadable" and _peak_address_space() >= 0.9 * memory_bytes:
                # libxml2 and others report a failed allocation as a parse error ("unknown error"): at the
                # address-space limit it is the limit that stopped them.
                answer["error"] = {"kind": "DocumentOverLimit", "code": "document_extraction_memory",
                                   "message": "memory"}
        except MemoryError:
            answer = {"ok": False, "error": {"kind": "DocumentOverLimit", "code": "document_extraction_memory",
                                             "message": "memory"}}
        del blobs
        write_frame(stdout, answer)
