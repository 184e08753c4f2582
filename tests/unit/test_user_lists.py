"""How the CLI shows lists of users: the progress bar only for a person at a terminal."""

from __future__ import annotations

import io

from license_monitor.user_lists import peak_users_csv, peak_users_text, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_only_and_never_for_machine_output() -> None:
    terminal, pipe, quiet = Terminal(), io.StringIO(), Terminal()
    for stream, enabled in ((terminal, True), (pipe, True), (quiet, False)):
        with progress_bar(stream, enabled=enabled, mininterval=0) as advance:
            advance("2026-11-25")
            advance("2026-11-25")
    assert "user details from 2026-11-25" in terminal.getvalue()
    assert "2 pages" in terminal.getvalue()
    assert pipe.getvalue() == ""
    assert quiet.getvalue() == ""


RESULT = {"level": 1, "day": "2026-11-25", "held_level": 1, "seconds_at_or_above_level": 5400,
          "present_at_level": 2, "users": [{
              "id": "u1", "name": "Ann, \"the\" Agent", "division": "", "license": "cloudCX3",
              "class": "agent", "seconds_at_peak": 5400, "seconds_logged_in": 7200.5,
              "first_login": "2026-11-25T08:00:00Z", "last_logout": None,
              "presence": {"AVAILABLE": 600, "ON_QUEUE": 6600.5}, "routing": {}}]}


def test_csv_quotes_names_and_flattens_times() -> None:
    lines = peak_users_csv(RESULT).splitlines()
    assert lines[1] == ('u1,"Ann, ""the"" Agent",,cloudCX3,agent,5400,7200.5,'
                        "2026-11-25T08:00:00Z,,AVAILABLE=600;ON_QUEUE=6600.5,")


def test_text_says_what_was_attributed() -> None:
    text = peak_users_text(RESULT)
    assert text.startswith("Level 1 on 2026-11-25 (held 30 minutes: 1); 1h30 at 1 or more, "
                           "2 users logged in at that level; the top 1:")
    assert peak_users_text({**RESULT, "level": 0}) == (
        "No level was held for 30 minutes on 2026-11-25: nobody to attribute.\n")
