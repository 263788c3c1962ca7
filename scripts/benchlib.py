"""What scripts/bench.py and scripts/bench_scale.py share: their log lines,
the processes they start (stopped, with their work folder removed, at the
end or on failure), and hashing a file and choosing a port."""

import hashlib
import os
import shutil
import signal
import socket
import sys


class Run:
    def __init__(self, name, work):
        self.name = name
        self.work = work
        self.procs = []

    def log(self, msg):
        print(f"{self.name}: {msg}", file=sys.stderr, flush=True)

    def cleanup(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except Exception:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except Exception:
                pass
        shutil.rmtree(self.work, ignore_errors=True)

    def die(self, msg):
        self.log("FAILED: " + msg)
        self.cleanup()
        sys.exit(1)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def free_port():
    # The benchmarks drive third-party servers (nginx) that need a port number up front.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
