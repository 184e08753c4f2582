"""Region domains resolve to login and API hosts; overrides win; unknown regions fail clearly."""

from __future__ import annotations

import pytest

from license_monitor.genesys.regions import REGION_DOMAINS, base_urls

# The 18 domains of DESIGN.md section 5, spelled out independently of the module's table.
DESIGN_DOMAINS = [
    "mypurecloud.com",
    "use2.us-gov-pure.cloud",
    "usw2.pure.cloud",
    "cac1.pure.cloud",
    "sae1.pure.cloud",
    "mxc1.pure.cloud",
    "mypurecloud.ie",
    "euw2.pure.cloud",
    "mypurecloud.de",
    "euc2.pure.cloud",
    "edee1.eusc-pure.cloud",
    "mec1.pure.cloud",
    "aps1.pure.cloud",
    "apse1.pure.cloud",
    "mypurecloud.com.au",
    "mypurecloud.jp",
    "apne2.pure.cloud",
    "apne3.pure.cloud",
]


def test_region_table_holds_exactly_the_18_documented_domains() -> None:
    assert len(REGION_DOMAINS) == 18
    assert set(REGION_DOMAINS) == set(DESIGN_DOMAINS)


@pytest.mark.parametrize("domain", DESIGN_DOMAINS)
def test_every_region_maps_to_its_login_and_api_hosts(domain: str) -> None:
    assert base_urls(domain) == (f"https://login.{domain}", f"https://api.{domain}")


def test_frankfurt_example_from_the_brief() -> None:
    assert base_urls("mypurecloud.de") == (
        "https://login.mypurecloud.de",
        "https://api.mypurecloud.de",
    )


def test_region_is_matched_case_and_whitespace_insensitively() -> None:
    assert base_urls("  MyPureCloud.IE ") == (
        "https://login.mypurecloud.ie",
        "https://api.mypurecloud.ie",
    )


def test_api_override_wins_and_login_still_comes_from_the_region() -> None:
    login, api = base_urls("mypurecloud.de", api_url="https://proxy.example.com/genesys/")
    assert login == "https://login.mypurecloud.de"
    assert api == "https://proxy.example.com/genesys"


def test_login_override_wins_and_api_still_comes_from_the_region() -> None:
    login, api = base_urls("mypurecloud.jp", login_url="http://127.0.0.1:8080")
    assert (login, api) == ("http://127.0.0.1:8080", "https://api.mypurecloud.jp")


def test_both_overrides_need_no_known_region() -> None:
    assert base_urls(
        "simulator", api_url="http://127.0.0.1:9000", login_url="http://127.0.0.1:9000/"
    ) == ("http://127.0.0.1:9000", "http://127.0.0.1:9000")


def test_unknown_region_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown Genesys Cloud region") as excinfo:
        base_urls("mypurecloud.fr")
    message = str(excinfo.value)
    assert "'mypurecloud.fr'" in message
    for domain in DESIGN_DOMAINS:
        assert domain in message


def test_override_that_is_not_an_http_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="api_url must start with https://"):
        base_urls("mypurecloud.com", api_url="api.mypurecloud.com")
