"""Genesys Cloud regions: the domain of each region and its login and API base URLs."""

from __future__ import annotations

# Every region's domain, as the official SDKs list them (DESIGN.md section 5). The login host is
# login.<domain> and the API host api.<domain>; the token endpoint lives on the login host.
REGION_DOMAINS: tuple[str, ...] = (
    "mypurecloud.com",  # us-east-1
    "use2.us-gov-pure.cloud",  # us-east-2 (FedRAMP)
    "usw2.pure.cloud",  # us-west-2
    "cac1.pure.cloud",  # ca-central-1
    "sae1.pure.cloud",  # sa-east-1
    "mxc1.pure.cloud",  # mx-central-1
    "mypurecloud.ie",  # eu-west-1
    "euw2.pure.cloud",  # eu-west-2
    "mypurecloud.de",  # eu-central-1
    "euc2.pure.cloud",  # eu-central-2
    "edee1.eusc-pure.cloud",  # EU sovereign cloud
    "mec1.pure.cloud",  # me-central-1
    "aps1.pure.cloud",  # ap-south-1
    "apse1.pure.cloud",  # ap-southeast-1
    "mypurecloud.com.au",  # ap-southeast-2
    "mypurecloud.jp",  # ap-northeast-1
    "apne2.pure.cloud",  # ap-northeast-2
    "apne3.pure.cloud",  # ap-northeast-3
)


def _clean_override(name: str, url: str) -> str:
    """Return an override URL without its trailing slash, or raise if it is not http(s)."""
    cleaned = url.strip().rstrip("/")
    if not cleaned.startswith(("https://", "http://")):
        raise ValueError(f"{name} must start with https:// (got {cleaned!r})")
    return cleaned


def base_urls(
    region: str, api_url: str | None = None, login_url: str | None = None
) -> tuple[str, str]:
    """Return (login_url, api_url) for a region domain; explicit overrides win.

    Raises:
        ValueError: the region is unknown and not both URLs are overridden, or an override is
            not an http(s) URL.
    """
    login = _clean_override("login_url", login_url) if login_url else None
    api = _clean_override("api_url", api_url) if api_url else None
    if login is not None and api is not None:
        # A simulator or proxy needs no region at all.
        return login, api
    domain = region.strip().lower().rstrip(".")
    if domain not in REGION_DOMAINS:
        known = ", ".join(REGION_DOMAINS)
        raise ValueError(f"unknown Genesys Cloud region {region!r}; known regions: {known}")
    return login or f"https://login.{domain}", api or f"https://api.{domain}"
