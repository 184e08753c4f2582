"""A verbose CLI check never writes a webhook's secret path, even with debug detail on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator import GenesysSimulator
from simulator.azurite import Azurite
from simulator.receiver import HttpReceiver
from tests.integration.test_cli import cli, env_for, story_simulator  # noqa: F401 (fixture)

SECRET_PATH = "/webhookb2/4f1c9e-secret-token/IncomingWebhook/a1b2c3d4e5"


@pytest.mark.parametrize("verbosity", ["-v", "-vv"])
def test_a_verbose_check_logs_no_webhook_path(
    story_simulator: Callable[[int], GenesysSimulator],  # noqa: F811
    webhook_receiver: Callable[..., HttpReceiver],
    azurite: Azurite, table_name: str, verbosity: str,
) -> None:
    receiver = webhook_receiver(path=SECRET_PATH)
    sim = story_simulator(97)
    env = env_for(sim, STATE_CONNECTION=azurite.connection_string, STATE_TABLE=table_name,
                  ALERT_WEBHOOK_URL=receiver.url)
    done = cli(["check", verbosity], env)
    assert done.returncode == 2, done.stderr
    assert len(receiver.delivered) == 1  # the alert went through the secret path
    assert receiver.delivered[0].path == SECRET_PATH
    assert " INFO " in done.stderr  # logging really was on
    for part in ("4f1c9e-secret-token", "a1b2c3d4e5"):
        assert part not in done.stderr
