"""Start and stop a local Azurite table service (npm package, pinned in package.json)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AZURITE_TABLE = REPO / "node_modules" / ".bin" / "azurite-table"
# Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(port: int) -> str:
    """The connection string of an Azurite table service on port."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


class Azurite:
    """A running azurite-table process (in-memory: nothing is written to disk)."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.process = process
        self.connection_string = connection_string(port)

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit within 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_azurite(timeout: float = 30) -> Azurite:
    """Start azurite-table from the repository's node_modules and wait until it listens."""
    binary = str(AZURITE_TABLE) if AZURITE_TABLE.exists() else shutil.which("azurite-table")
    if binary is None:
        raise RuntimeError("azurite-table not found: run `npm ci` in the repository first")
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 (a fixed program with fixed arguments)
        [binary, "--tableHost", "127.0.0.1", "--tablePort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"azurite-table exited: {output.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Azurite(port, process)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"azurite-table did not start within {timeout:g} s")
