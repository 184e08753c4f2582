"""Paging never loops for ever: a repeated page or pages without end stop with an error."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from license_monitor.genesys.errors import UnexpectedResponse
from simulator import Fault
from tests.integration.test_client import (
    DETAILS_PATH,
    SimulatorFactory,
    client_for,
    numbered_users,
    online_org,
    org_of,
)


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_listing_that_repeats_its_first_page_stops_at_page_two(
    simulator: SimulatorFactory, sim_now: datetime, parallel: int,
) -> None:
    sim = simulator(org_of(numbered_users(30), sim_now))
    client = client_for(sim)
    client.ensure_token()
    sim.inject(Fault(kind="repeat_page", path="/api/v2/users", times=None))

    with pytest.raises(UnexpectedResponse, match="page 2 with the same entities as page 1"):
        list(client.iter_users(page_size=5, parallel=parallel))
    assert sim.count("/api/v2/users", "GET") <= 1 + 2 * parallel  # page 1 and a window


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_details_query_that_repeats_its_first_page_stops(
    simulator: SimulatorFactory, sim_now: datetime, parallel: int,
) -> None:
    sim = simulator(online_org(sim_now, online=12))
    client = client_for(sim)
    client.ensure_token()
    sim.inject(Fault(kind="repeat_page", path=DETAILS_PATH, times=None))

    with pytest.raises(UnexpectedResponse, match="same entities"):
        list(client.iter_presence_details(sim_now - timedelta(minutes=15), sim_now,
                                          page_size=3, parallel=parallel))
    assert sim.count(DETAILS_PATH, "POST") <= 1 + 2 * parallel


def test_a_listing_that_repeats_one_page_late_stops_there(
    simulator: SimulatorFactory, sim_now: datetime,
) -> None:
    sim = simulator(org_of(numbered_users(30), sim_now))
    client = client_for(sim)
    client.ensure_token()
    users = client.iter_users(page_size=5)
    seen = [next(users) for _ in range(10)]  # pages 1 and 2 as they are
    sim.inject(Fault(kind="repeat_page", path="/api/v2/users", times=2))

    with pytest.raises(UnexpectedResponse, match="page 4 with the same entities as page 3"):
        list(users)  # page 3 is page 1 again (new), page 4 repeats it
    assert len({u.id for u in seen}) == 10


def test_a_listing_that_keeps_announcing_more_pages_stops_past_the_first_count_and_margin(
    simulator: SimulatorFactory, sim_now: datetime,
) -> None:
    # Page 1 announces 2 pages; every later page announces 40 and is full.
    sim = simulator(org_of(numbered_users(40), sim_now), rate_limit_per_minute=None)
    client = client_for(sim)
    client.ensure_token()
    sim.inject(Fault(kind="page_count", path="/api/v2/users", page_count=2))

    with pytest.raises(UnexpectedResponse, match="past page 7 \\(page 1 announced 2 page"):
        list(client.iter_users(page_size=1))
    assert sim.count("/api/v2/users", "GET") == 7


def test_an_honest_listing_is_read_to_its_last_page(
    simulator: SimulatorFactory, sim_now: datetime,
) -> None:
    sim = simulator(org_of(numbered_users(40), sim_now), rate_limit_per_minute=None)
    client = client_for(sim)
    client.ensure_token()
    assert len(list(client.iter_users(page_size=1))) == 40
