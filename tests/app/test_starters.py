"""The timer, HTTP and purge starters, called as registered, against a local Durable extension."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from function_app import app
from orchestrators.replay_host import registry_of
from orchestrators.starters import singleton_id
from tests.fixtures.azurite import stored_samples
from tests.fixtures.durable_extension import LocalDurableExtension, run_async
from tests.fixtures.monitor import World


def starter(name: str) -> Callable[..., object]:
    return registry_of(app).functions[name]


def post(params: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url="http://localhost:7071/api/license-check",
                            params=params or {}, body=b"")


def test_triggers_are_registered_as_documented() -> None:
    triggers = registry_of(app).triggers
    manual = triggers["manual_check"].get_dict_repr()
    assert manual["authLevel"] == func.AuthLevel.FUNCTION  # a function key, never anonymous
    assert manual["route"] == "license-check"
    assert [str(getattr(m, "value", m)) for m in manual["methods"]] == ["POST"]
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
    assert extension.start_requests == [singleton_id(w.settings.org_key)]
    assert "already running" in caplog.text
    extension.release.set()
    extension.wait_all()
    instance = extension.instances[singleton_id(w.settings.org_key)]
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
    # A dry run is not the singleton: it never blocks or is blocked by the real check.
    assert extension.start_requests[0].startswith("license-check-dry-run-")


def test_manual_check_answers_202_with_status_links_when_slow(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world(MANUAL_CHECK_WAIT_SECONDS="1")
    extension = durable_extension(app, w.host())
    extension.release.clear()
    response = run_async(starter("manual_check")(req=post(), client=extension.binding()))
    assert response.status_code == 202
    links = json.loads(response.get_body())
    instance_id = singleton_id(w.settings.org_key)
    assert links["id"] == instance_id
    assert instance_id in response.headers["Location"]
    assert links["statusQueryGetUri"].startswith("http://localhost:7071/")
    extension.release.set()
    extension.wait_all()


def test_purge_removes_finished_history_and_old_usage_rows(
    world: Callable[..., World], durable_extension: Callable[..., LocalDurableExtension],
) -> None:
    w = world()
    assert w.services.state is not None
    old = datetime.now(UTC) - timedelta(days=200)
    w.services.state.samples.save({"checked_at": "old"}, old)
    extension = durable_extension(app, w.host())
    w.at_level(30)
    run_async(starter("scheduled_check")(timer=TimerRequest(), client=extension.binding()))
    extension.wait_all()
    run_async(starter("purge_history")(timer=TimerRequest(), client=extension.binding()))
    assert extension.purges[0]["runtimeStatus"] == ["Completed,Failed,Terminated"]
    assert "createdTimeTo" in extension.purges[0]
    assert extension.instances == {}
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
