"""The timer, HTTP and purge starters, called as registered, against a local Durable extension."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from function_app import app
from orchestrators import starters
from orchestrators.replay_host import registry_of
from orchestrators.starters import STUCK_AFTER, dry_run_id, singleton_id
from tests.fixtures.azurite import stored_samples
from tests.fixtures.durable_extension import CODE, LocalDurableExtension, run_async
from tests.fixtures.monitor import World


def starter(name: str) -> Callable[..., object]:
    return registry_of(app).functions[name]


FUNCTION_KEY = "caller-function-key"


def post(params: dict[str, str] | None = None) -> func.HttpRequest:
    # The caller's function key rides in the query, as `curl ...?code=<key>` sends it.
    return func.HttpRequest(
        method="POST", url=f"http://localhost:7071/api/license-check?code={FUNCTION_KEY}",
        params={"code": FUNCTION_KEY, **(params or {})}, body=b"")


def get_status(extension: LocalDurableExtension, instance_id: str) -> func.HttpResponse:
    request = func.HttpRequest(
        method="GET", url=f"http://localhost:7071/api/license-check/{instance_id}?code=k",
        params={"code": "k"}, route_params={"instance_id": instance_id}, body=b"")
    response = run_async(starter("check_status")(req=request, client=extension.binding()))
    assert isinstance(response, func.HttpResponse)
    return response


def test_triggers_are_registered_as_documented() -> None:
    triggers = registry_of(app).triggers
    manual = triggers["manual_check"].get_dict_repr()
    assert manual["authLevel"] == func.AuthLevel.FUNCTION  # a function key, never anonymous
    assert manual["route"] == "license-check"
    assert [str(getattr(m, "value", m)) for m in manual["methods"]] == ["POST"]
    status = triggers["check_status"].get_dict_repr()
    assert status["authLevel"] == func.AuthLevel.FUNCTION
    assert status["route"] == "license-check/{instance_id}"
    assert [str(getattr(m, "value", m)) for m in status["methods"]] == ["GET"]
    scheduled = triggers["scheduled_check"].get_dict_repr()
    assert scheduled["schedule"] == "%MONITOR_SCHEDULE%"
    assert scheduled["runOnStartup"] is False
    assert triggers["license_check"].type == "orchestrationTrigger"


def test_timer_starts_one_check_and_skips_while_it_runs(
    world: Callable[..., World],
    durable_extension: Callable[..., LocalDurableExtension],
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world()
    w.at_level(60)
    extension = durable_extension(app, w.host())
    extension.release.clear()  # hold the first check in Running
    timer = TimerRequest()
    run_async(starter("scheduled_check")(timer=timer, client=extension.binding()))
    with caplog.at_level(logging.INFO, logger="orchestrators.starters"):
        run_async(starter("scheduled_check")(timer=timer, client=extension.binding()))
    assert extension.start_requests == [singleton_id(w.settings.client_key)]
    assert "already running" in caplog.text
    extension.release.set()
    extension.wait_all()
    instance = extension.instances[singleton_id(w.settings.client_key)]
    assert instance.runtime_status == "Completed"
    assert instance.output["level"] == "ok"
    assert instance.custom_status["concurrent"] == 60


def test_timer_survives_losing_the_start_race(
    world: Callable[..., World],
    durable_extension: Callable[..., LocalDurableExtension],
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world()
    extension = durable_extension(app, w.host())
    extension.race_next_start = True
    with caplog.at_level(logging.INFO, logger="orchestrators.starters"):
        run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    assert "started concurrently" in caplog.text
    assert len(extension.start_requests) == 1


def test_manual_check_answers_with_the_check_json(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()
    w.at_level(92)
    extension = durable_extension(app, w.host())
    response = run_async(starter("manual_check")(req=post(), client=extension.binding()))
    assert response.status_code == 200, response.get_body()
    report = json.loads(response.get_body())
    assert report["level"] == "warning"
    assert report["events"] == ["breach"]
    assert report["notifications"][0]["delivered"] is True
    assert len(w.receiver.delivered) == 1


def test_manual_dry_run_measures_without_notifying_or_writing(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()
    w.at_level(97)
    extension = durable_extension(app, w.host())
    response = run_async(starter("manual_check")(
        req=post({"dryRun": "true"}), client=extension.binding()))
    report = json.loads(response.get_body())
    assert report["dry_run"] is True
    assert report["level"] == "critical"
    assert report["notifications"] == []
    assert w.receiver.received == []
    assert w.services.state is not None
    assert w.services.state.alerts.load_state().level == "ok"
    # A dry run has its own singleton: it never blocks or is blocked by the real check.
    assert extension.start_requests == [dry_run_id(w.settings.client_key)]


def test_a_second_dry_run_waits_for_the_first_instead_of_starting_another(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world(MANUAL_CHECK_WAIT_SECONDS="0")
    w.at_level(50)
    extension = durable_extension(app, w.host())
    extension.release.clear()  # hold the first dry run in Pending
    dry = post({"dryRun": "true"})
    first = run_async(starter("manual_check")(req=dry, client=extension.binding()))
    with caplog.at_level(logging.INFO, logger="orchestrators.starters"):
        second = run_async(starter("manual_check")(req=dry, client=extension.binding()))
    assert (first.status_code, second.status_code) == (202, 202)
    assert extension.start_requests == [dry_run_id(w.settings.client_key)]
    assert "already running" in caplog.text
    # The real check is not blocked by the dry run.
    run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    assert extension.start_requests[-1] == singleton_id(w.settings.client_key)
    extension.release.set()
    extension.wait_all()


def test_manual_check_answers_202_with_our_status_route_and_no_key_when_slow(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(MANUAL_CHECK_WAIT_SECONDS="1")
    w.at_level(60)
    extension = durable_extension(app, w.host())
    extension.release.clear()
    response = run_async(starter("manual_check")(req=post(), client=extension.binding()))
    assert response.status_code == 202
    instance_id = singleton_id(w.settings.client_key)
    answer = response.get_body().decode() + json.dumps(dict(response.headers))
    # Neither the Durable system key nor the caller's function key, nor any extension URL.
    for secret in ("code=", CODE, FUNCTION_KEY, "runtime/webhooks", str(extension.port)):
        assert secret not in answer
    body = json.loads(response.get_body())
    route = f"http://localhost:7071/api/license-check/{instance_id}"
    assert body == {"id": instance_id, "statusUri": route}
    assert response.headers["Location"] == route

    running = get_status(extension, instance_id)
    assert running.status_code == 202
    assert json.loads(running.get_body())["runtimeStatus"] in ("Pending", "Running")
    assert running.headers["Location"] == route

    extension.release.set()
    extension.wait_all()
    finished = get_status(extension, instance_id)
    assert finished.status_code == 200
    status = json.loads(finished.get_body())
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["level"] == "ok"
    assert status["customStatus"]["concurrent"] == 60
    assert CODE not in finished.get_body().decode()


def test_the_status_route_answers_only_this_orgs_checks(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()
    extension = durable_extension(app, w.host())
    extension.seed("someone-elses-instance", runtime_status="Completed")
    assert get_status(extension, "someone-elses-instance").status_code == 404
    assert get_status(extension, singleton_id(w.settings.client_key)).status_code == 404


def test_a_stuck_check_is_terminated_and_a_new_one_starts(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = world()
    w.at_level(40)
    extension = durable_extension(app, w.host())
    instance_id = singleton_id(w.settings.client_key)
    extension.seed(instance_id, created=datetime.now(UTC) - STUCK_AFTER - timedelta(minutes=5))
    with caplog.at_level(logging.INFO, logger="orchestrators.starters"):
        run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert instance_id in warning.getMessage()
    assert "busy for 25 min (over 20 min" in warning.getMessage()  # its age and the limit
    assert [t[0] for t in extension.terminations] == [instance_id]
    assert extension.start_requests == [instance_id]
    extension.wait_all()
    instance = extension.instances[instance_id]
    assert instance.runtime_status == "Completed"
    assert instance.output["level"] == "ok"


@pytest.mark.parametrize(("host_json", "limit"), [
    ({"version": "2.0", "functionTimeout": "00:10:00"}, timedelta(minutes=10)),
    ({"version": "2.0", "functionTimeout": "1.02:03:04"}, timedelta(days=1, seconds=7384)),
    ({"version": "2.0"}, timedelta(minutes=30)),  # Flex Consumption's default
    ({"version": "2.0", "functionTimeout": "-1"}, timedelta(minutes=30)),
])
def test_the_stuck_limit_follows_host_json(
    tmp_path: Path, host_json: dict[str, str], limit: timedelta,
) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps(host_json), encoding="utf-8")
    assert starters.function_timeout(path) == limit


def test_the_app_treats_a_check_as_stuck_after_twice_its_function_timeout() -> None:
    # host.json sets "functionTimeout": "00:10:00".
    assert timedelta(minutes=20) == STUCK_AFTER


def test_a_young_busy_check_is_left_alone(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()
    extension = durable_extension(app, w.host())
    instance_id = singleton_id(w.settings.client_key)
    extension.seed(instance_id, created=datetime.now(UTC) - STUCK_AFTER + timedelta(minutes=2))
    run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    assert extension.terminations == []
    assert extension.start_requests == []


def test_a_stuck_check_the_hub_has_not_terminated_yet_is_retried_next_tick(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world()
    extension = durable_extension(app, w.host())
    extension.termination_delay = None  # the hub does not process the terminate request
    monkeypatch.setattr(starters, "TERMINATION_WAIT_SECONDS", 0.5)
    instance_id = singleton_id(w.settings.client_key)
    extension.seed(instance_id, created=datetime.now(UTC) - 3 * STUCK_AFTER)
    with caplog.at_level(logging.WARNING, logger="orchestrators.starters"):
        run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    assert "not terminated yet" in caplog.text
    assert extension.start_requests == []
    # The next tick asks again and, once the hub has processed it, starts a new check.
    extension.termination_delay = 0.1
    w.at_level(20)
    run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    assert extension.start_requests == [instance_id]
    extension.wait_all()
    assert extension.instances[instance_id].runtime_status == "Completed"


def test_the_stand_in_refuses_start_new_until_a_termination_is_processed(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    # As the real extension: terminate is asynchronous, a Running instance cannot be replaced,
    # and only a finished one can be purged.
    w = world()
    extension = durable_extension(app, w.host())
    extension.termination_delay = None
    extension.seed("stuck")

    async def story() -> list[str]:
        client = df.DurableOrchestrationClient(extension.binding())
        seen = []
        await client.terminate("stuck", "test")
        for attempt in (client.start_new("license_check", "stuck", {}),
                        client.purge_instance_history("stuck")):
            try:
                await attempt
            except Exception as err:  # the SDK raises plain Exception
                seen.append(str(err))
        return seen

    refusals = run_async(story())
    assert "already exists" in refusals[0]
    assert "412" in refusals[1]
    assert extension.instances["stuck"].runtime_status == "Running"


def test_purge_removes_finished_history_and_old_usage_rows(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()
    assert w.services.state is not None
    old = datetime.now(UTC) - timedelta(days=200)
    w.services.state.samples.save({"checked_at": "old"}, old)
    extension = durable_extension(app, w.host())
    long_ago = datetime.now(UTC) - timedelta(days=30)
    extension.seed("old-finished", runtime_status="Completed", created=long_ago)
    extension.seed("old-failed", runtime_status="Failed", created=long_ago)
    w.at_level(30)
    run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    extension.wait_all()
    run_async(starter("purge_history")(timer=TimerRequest(), client=extension.binding()))
    assert extension.purges[0]["runtimeStatus"] == ["Completed,Failed,Terminated"]
    assert "createdTimeTo" in extension.purges[0]
    # Only history older than HISTORY_RETENTION_DAYS goes; today's check stays.
    assert list(extension.instances) == [singleton_id(w.settings.client_key)]
    assert stored_samples(w.services.state, old - timedelta(days=1), old + timedelta(days=1)) == []


def test_every_binding_annotation_is_one_the_functions_worker_accepts() -> None:
    # The Python worker indexes the app by checking each binding parameter's annotation: it
    # must be a class or a typing generic (azure_functions_worker.functions); anything else
    # ("binding request has invalid non-type annotation") stops the whole app from loading.
    import collections.abc  # noqa: PLC0415
    import typing  # noqa: PLC0415

    def accepted(annotation: object) -> bool:
        if isinstance(annotation, type):
            return True
        generic = isinstance(annotation, typing._GenericAlias | typing._SpecialGenericAlias)  # type: ignore[attr-defined]
        return generic and annotation.__origin__ not in (  # type: ignore[attr-defined]
            typing.Union, tuple, typing.ClassVar, collections.abc.Callable)

    checked = 0
    for name, function in registry_of(app).functions.items():
        hints = typing.get_type_hints(getattr(function, "client_function", function))
        for parameter, annotation in hints.items():
            if parameter == "return":
                continue
            assert accepted(annotation), (name, parameter, annotation)
            checked += 1
    assert checked >= 10
