"""What the tests and the benchmarks share to drive a real server and judge what it says: neither a test
nor a benchmark, and nothing here runs in a server's request path.

* `server`: `voxhost serve` as a subprocess on free 127.0.0.1 ports (`start_server`, `serve`,
  `ServerProcess`, `free_port`), re-exported here;
* `wer`: word error counting against a script (`words`, `word_errors`, `missing_sentences`).
"""

from voxhost.harness.server import (
    HOST,
    ServerError,
    ServerProcess,
    free_port,
    free_ports,
    launch,
    serve,
    serve_with_client,
    start_server,
    wait_ready,
)

__all__ = [
    "HOST",
    "ServerError",
    "ServerProcess",
    "free_port",
    "free_ports",
    "launch",
    "serve",
    "serve_with_client",
    "start_server",
    "wait_ready",
]
