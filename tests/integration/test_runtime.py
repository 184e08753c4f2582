"""Per-process services: built without holding the process lock, storage credential choice."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from license_monitor import runtime
from license_monitor.settings import ConfigError, Settings
from simulator.azurite import Azurite, connection_string

BASE = {"GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "secret", "LICENSE_CAPACITY": "100"}


class GatedProxy:
    """A TCP proxy to Azurite that holds every connection until `gate` is set (slow storage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.gate = threading.Event()
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.gate.wait(timeout=30)
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def pipe(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                sink.close()

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.gate.set()
        self.listener.close()


@pytest.fixture
def slow_storage(azurite: Azurite) -> Iterator[GatedProxy]:
    proxy = GatedProxy(azurite.port)
    yield proxy
    proxy.close()


def test_building_services_does_not_stall_other_callers_and_installs_one(
    slow_storage: GatedProxy, table_name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**BASE, "STATE_CONNECTION": connection_string(slow_storage.port),
                        "STATE_TABLE": table_name}.items():
        monkeypatch.setenv(name, value)
    runtime.install(None)
    built: list[runtime.Services] = []
    builders = [threading.Thread(target=lambda: built.append(runtime.services()))
                for _ in range(2)]
    try:
        for builder in builders:
            builder.start()
        deadline = time.monotonic() + 10
        while slow_storage.accepted < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Both builds are waiting on storage at once: neither holds the process lock.
        assert slow_storage.accepted >= 2
        reader = threading.Thread(target=runtime.settings)
        reader.start()
        reader.join(timeout=2)
        assert not reader.is_alive(), "settings() waited for storage"
        slow_storage.gate.set()
        for builder in builders:
            builder.join(timeout=30)
        # Compare-and-set: one Services for the process, whichever build finished first.
        assert len(built) == 2
        assert built[0] is built[1] is runtime.services()
    finally:
        slow_storage.gate.set()
        runtime.install(None)


def settings(**extra: str) -> Settings:
    return Settings.from_env({**BASE, "STATE_ACCOUNT_URL": "https://st.table.core.windows.net",
                              **extra})


def test_storage_uses_the_managed_identity_of_azure_client_id() -> None:
    credential = runtime.storage_credential(settings(AZURE_CLIENT_ID="1111-2222"))
    assert isinstance(credential, ManagedIdentityCredential)
    assert settings(AZURE_CLIENT_ID="1111-2222").azure_client_id == "1111-2222"


def test_default_azure_credential_only_when_asked() -> None:
    assert isinstance(runtime.storage_credential(settings(AZURE_CREDENTIAL="default")),
                      DefaultAzureCredential)
    assert isinstance(runtime.storage_credential(settings()), ManagedIdentityCredential)


def test_an_unknown_credential_choice_is_a_settings_problem() -> None:
    with pytest.raises(ConfigError, match="AZURE_CREDENTIAL must be one of managed_identity"):
        settings(AZURE_CREDENTIAL="cli")
