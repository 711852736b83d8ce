"""The embedded database stops when its last live process exits, even if another was killed."""
import os
import subprocess
import sys
import threading

from pgserver.utils import DiskList

from saas_bot.embedded_db import _forget_dead_handles


class _Server:
    def __init__(self, path):
        self._lock = threading.Lock()
        self.global_process_id_list = DiskList(path)


def test_dead_processes_are_dropped_from_the_handle_list(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server = _Server(tmp_path / ".handle_pids.json")
    server.global_process_id_list.put([dead.pid, os.getpid()])
    _forget_dead_handles(server)
    assert server.global_process_id_list.get() == [os.getpid()]
