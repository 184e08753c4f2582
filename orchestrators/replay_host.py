"""An in-process Durable Functions host for the CLI and the tests.

Azure Functions Core Tools cannot run everywhere (and never in CI), so this host drives the
orchestrators registered on the app through the SDK's own replay engine, exactly as the Durable
extension does: it builds the context JSON (history, input, schema version), lets the SDK
replay the generator, reads the actions it schedules, runs the activities in process (in
parallel for a fan-out) and appends their results to the history, episode after episode.

Every payload crosses a JSON round trip, as in Azure, so an unserializable input or output
fails here too; every episode replays the whole history, so non-determinism shows up as a
changed action list; and the history is kept so tests can read exactly what Azure would store.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models import DurableOrchestrationContext
from azure.durable_functions.models.actions.CallActivityAction import CallActivityAction
from azure.durable_functions.models.actions.CallActivityWithRetryAction import (
    CallActivityWithRetryAction,
)
from azure.durable_functions.models.actions.CreateTimerAction import CreateTimerAction
from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.Task import AtomicTask

logger = logging.getLogger(__name__)

# History event types (DurableTask.Core EventType).
EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13

MAX_EPISODES = 200
_DETAILS = "\x00"  # separates a failure's reason from its details inside this module


class NonDeterminismError(Exception):
    """A replay scheduled different actions than the episode that recorded the history."""


class OrchestrationError(Exception):
    """The orchestrator itself raised (not an activity it caught)."""


@dataclass
class OrchestrationResult:
    """What the Durable status API would report for a finished instance."""

    instance_id: str
    runtime_status: str  # "Completed" or "Failed"
    output: Any
    custom_status: Any
    history: list[dict[str, Any]]
    episodes: int
    activity_calls: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def history_bytes(self) -> int:
        """Size of the stored history as JSON (what the task hub keeps for this instance)."""
        return len(json.dumps(self.history))


@dataclass
class _Registry:
    orchestrators: dict[str, Any]
    activities: dict[str, Callable[..., Any]]
    functions: dict[str, Callable[..., Any]]  # every registered user function, by name
    triggers: dict[str, Any]  # and its trigger binding (type, schedule, route, auth level)


_registries: dict[int, _Registry] = {}


def registry_of(app: df.DFApp) -> _Registry:
    """Index the orchestrator and activity functions registered on the app by name."""
    # The SDK refuses to index an app twice (it sees its own names as duplicates): cache.
    if id(app) not in _registries:
        _registries[id(app)] = _build_registry(app)
    return _registries[id(app)]


def _build_registry(app: df.DFApp) -> _Registry:
    orchestrators: dict[str, Any] = {}
    activities: dict[str, Callable[..., Any]] = {}
    functions: dict[str, Callable[..., Any]] = {}
    triggers: dict[str, Any] = {}
    for function in app.get_functions():
        trigger = function.get_trigger()
        kind = getattr(trigger, "type", None) if trigger else None
        name = function.get_function_name()
        if name is None:
            continue
        functions[name] = function.get_user_function()
        triggers[name] = trigger
        if kind == "orchestrationTrigger":
            orchestrators[name] = function.get_user_function()
        elif kind == "activityTrigger":
            activities[name] = function.get_user_function()
    return _Registry(orchestrators, activities, functions, triggers)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReplayHost:
    """Runs orchestrations of one app in process through the SDK's replay engine."""

    def __init__(
        self,
        app: df.DFApp,
        *,
        clock: Callable[[], datetime] | None = None,
        max_parallel_activities: int = 8,
        activity_hook: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.registry = registry_of(app)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_parallel_activities = max_parallel_activities
        # Called before each activity runs (name, input): lets tests fail an attempt on cue.
        self.activity_hook = activity_hook

    def run(
        self, orchestrator: str, input_: Any = None, *, instance_id: str | None = None
    ) -> OrchestrationResult:
        """Run one orchestration instance to completion and return its final status."""
        handle = self.registry.orchestrators[orchestrator]
        user_fn = handle.orchestrator_function
        instance_id = instance_id or uuid.uuid4().hex
        started = self.clock()
        history: list[dict[str, Any]] = [
            self._event(ORCHESTRATOR_STARTED, -1, started),
            self._event(
                EXECUTION_STARTED, -1, started, Name=orchestrator, Version="",
                # The extension hands the input over as JSON text, itself JSON encoded.
                Input=json.dumps(json.dumps(input_)),
            ),
        ]
        recorded_actions: list[Any] = []
        dispatched: set[int] = set()
        activity_calls: list[str] = []
        attempts: dict[int, int] = {}
        state: dict[str, Any] = {}
        with ThreadPoolExecutor(self.max_parallel_activities) as pool:
            for episode in range(1, MAX_EPISODES + 1):
                context, state = self._replay(user_fn, handle, history, instance_id, input_)
                # Schema V2 keeps every action in one growing list; V1 a list per episode.
                actions = [a for group in state.get("actions", []) for a in group]
                if actions[: len(recorded_actions)] != recorded_actions:
                    raise NonDeterminismError(
                        f"episode {episode} of {orchestrator} replayed {recorded_actions!r} "
                        f"as {actions[: len(recorded_actions)]!r}")
                recorded_actions = actions
                if state.get("isDone") or state.get("error"):
                    return self._finish(instance_id, state, history, episode, activity_calls)
                now = self.clock()
                history.append(self._event(ORCHESTRATOR_COMPLETED, -1, now))
                history.append(self._event(ORCHESTRATOR_STARTED, -1, now))
                futures: dict[int, Future[tuple[bool, str]]] = {}
                timers: list[tuple[int, datetime]] = []
                for task_id, task in sorted(self._open_atomic_tasks(context)):
                    if task_id in dispatched:
                        continue
                    dispatched.add(task_id)
                    kind, name, payload, parent = self._describe(task)
                    if kind == "timer":
                        timers.append((task_id, self._fire_at(task, parent, now)))
                        continue
                    attempts[task_id] = attempts.get(task_id, 0) + 1
                    activity_calls.append(name)
                    history.append(self._event(
                        TASK_SCHEDULED, task_id, now, Name=name, Input=payload))
                    futures[task_id] = pool.submit(self._run_activity, name, payload)
                if not futures and not timers:
                    raise OrchestrationError(
                        f"{orchestrator} is waiting on something this host cannot provide")
                for task_id, fire_at in timers:
                    history.append(self._event(
                        TIMER_CREATED, task_id, now, FireAt=_timestamp(fire_at)))
                    history.append(self._event(
                        TIMER_FIRED, -1, now, TimerId=task_id, FireAt=_timestamp(fire_at)))
                for task_id, future in sorted(futures.items()):
                    ok, result = future.result()
                    done = self.clock()
                    if ok:
                        history.append(self._event(
                            TASK_COMPLETED, -1, done, TaskScheduledId=task_id, Result=result))
                    else:
                        reason, _, details = result.partition(_DETAILS)
                        history.append(self._event(
                            TASK_FAILED, -1, done, TaskScheduledId=task_id, Reason=reason,
                            Details=details))
        raise OrchestrationError(f"{orchestrator} did not finish within {MAX_EPISODES} episodes")

    def _replay(
        self, user_fn: Any, handle: Any, history: list[dict[str, Any]], instance_id: str,
        input_: Any,
    ) -> tuple[DurableOrchestrationContext, dict[str, Any]]:
        """One episode: exactly what the registered handle does, keeping the context to read."""
        # Events before the episode's OrchestratorStarted are replays; the rest are new.
        boundary = max(
            i for i, event in enumerate(history) if event["EventType"] == ORCHESTRATOR_STARTED)
        played = [dict(event, IsPlayed=i < boundary) for i, event in enumerate(history)]
        body = json.dumps({
            "history": played,
            "instanceId": instance_id,
            "isReplaying": len(history) > 2,
            "parentInstanceId": None,
            "input": json.dumps(input_),
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
        })
        context = DurableOrchestrationContext.from_json(body)
        context._input_expected_type = getattr(handle, "_df_input_type", None)
        try:
            text = df.Orchestrator(user_fn).handle(context)
        except Exception as err:  # the SDK raises with the state appended after a marker
            message = str(err)
            marker = "\n\n$OutOfProcData$:"
            if marker in message:
                error_text, _, state_json = message.partition(marker)
                state = json.loads(state_json)
                state["error"] = error_text
                return context, state
            raise
        return context, json.loads(text)

    @staticmethod
    def _open_atomic_tasks(context: DurableOrchestrationContext) -> list[tuple[int, AtomicTask]]:
        found: list[tuple[int, AtomicTask]] = []
        for task_id, task in context.open_tasks.items():
            tasks = task if isinstance(task, list) else [task]
            found.extend((task_id, t) for t in tasks if isinstance(task_id, int))
        return found

    @staticmethod
    def _describe(task: AtomicTask) -> tuple[str, str, str, Any]:
        """Classify an open task: an activity call (name, JSON input) or a timer."""
        action = task.action_repr[0] if isinstance(task.action_repr, list) else task.action_repr
        parent = task.parent
        if isinstance(action, CreateTimerAction):
            return "timer", "", "", parent
        if isinstance(action, NoOpAction):
            if action.metadata and "timer" in action.metadata:
                return "timer", "", "", parent
            action = parent.actions if not isinstance(parent.actions, list) else parent.actions[0]
        if isinstance(action, CallActivityAction | CallActivityWithRetryAction):
            return "activity", action.function_name, action.input_, parent
        raise OrchestrationError(f"unsupported action {type(action).__name__}")

    @staticmethod
    def _fire_at(task: AtomicTask, parent: Any, now: datetime) -> datetime:
        """When a timer fires: the orchestrator's own (create_timer) or a retry's pause.

        Like retry pauses, timers fire in the same episode (tests and the CLI do not wait);
        the history holds them as the extension writes them, FireAt included.
        """
        action = task.action_repr[0] if isinstance(task.action_repr, list) else task.action_repr
        if isinstance(action, CreateTimerAction):
            return action.fire_at
        retry = parent.retry_options
        return now + timedelta(milliseconds=retry.first_retry_interval_in_milliseconds)

    def _run_activity(self, name: str, payload: str) -> tuple[bool, str]:
        """Run an activity as the worker would: JSON in, JSON out, exceptions as failures.

        A failure is worded as in Azure: the extension's TaskFailed reason is "Activity
        function '<name>' failed: " + the host's exception message, which the worker writes as
        "Result: Failure\nException: <Type>: <message>\nStack: ..."; details follow.
        """
        function = self.registry.activities.get(name)
        if function is None:
            return False, f"Activity function '{name}' failed: no such function{_DETAILS}"
        try:
            if self.activity_hook is not None:
                self.activity_hook(name, json.loads(payload))
            result = function(json.loads(payload))
            return True, json.dumps(result)
        except Exception as err:  # an activity failure is data for the orchestrator
            logger.debug("activity %s failed: %s", name, err)
            stack = "".join(traceback.format_tb(err.__traceback__)).strip()
            reason = (f"Activity function '{name}' failed: Result: Failure\n"
                      f"Exception: {type(err).__name__}: {err}\nStack: {stack}")
            return False, f"{reason}{_DETAILS}{type(err).__name__}"

    @staticmethod
    def _event(event_type: int, event_id: int, moment: datetime, **fields: Any) -> dict[str, Any]:
        return {"EventType": event_type, "EventId": event_id, "IsPlayed": False,
                "Timestamp": _timestamp(moment), **fields}

    def _finish(
        self, instance_id: str, state: dict[str, Any], history: list[dict[str, Any]],
        episodes: int, activity_calls: list[str],
    ) -> OrchestrationResult:
        failed = bool(state.get("error"))
        history.append(self._event(ORCHESTRATOR_COMPLETED, -1, self.clock()))
        history.append(self._event(
            EXECUTION_COMPLETED, -1, self.clock(),
            OrchestrationStatus=3 if failed else 1,
            Result=json.dumps(state.get("output"))))
        return OrchestrationResult(
            instance_id=instance_id,
            runtime_status="Failed" if failed else "Completed",
            output=state.get("output"),
            custom_status=state.get("customStatus"),
            history=history,
            episodes=episodes,
            activity_calls=activity_calls,
            error=state.get("error"),
        )
