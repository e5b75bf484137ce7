"""The disk's sync latency, for scripts/bench-proxy: appends 4 KiB to one file and calls
fdatasync after each write, like a log that syncs every acknowledged append.

    python3 fdatasync.py DIR [ITERATIONS]   # prints: p50_ms p99_ms iterations
"""
import os
import sys
import time

directory = sys.argv[1]
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
path = os.path.join(directory, "fdatasync-probe")
block = b"x" * 4096
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
took = []
try:
    for _ in range(iterations):
        start = time.perf_counter_ns()
        os.write(fd, block)
        os.fdatasync(fd)
        took.append(time.perf_counter_ns() - start)
finally:
    os.close(fd)
    os.unlink(path)
took.sort()
quantile = lambda q: took[min(len(took) - 1, int(len(took) * q))] / 1e6
print(f"{quantile(0.50):.3f} {quantile(0.99):.3f} {len(took)}")
