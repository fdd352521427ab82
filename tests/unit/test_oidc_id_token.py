"""The OIDC id token's checks, one by one: signature and algorithm, key id (rotation),
iss, aud, exp and nonce. Tokens are signed here with real keys (joserfc); the flow with
a real provider runs in tests/browser/test_provider_logins.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from app.auth.providers.oidc import OIDCAuthenticator
from app.outcomes import Forbidden
from tests.unit.test_oidc import OIDC

ISSUER = OIDC["oauth_issuer"]
NONCE = "n-0S6_WzA2Mj"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


class FakeProvider:
    """The provider's JWKS as its endpoint answers it (counted, to see re-fetches)."""

    def __init__(self, *keys: Any) -> None:
        self.keys = list(keys)
        self.fetches = 0

    def get(self, url: str) -> Any:
        assert url == f"{ISSUER}/jwks"
        self.fetches += 1
        jwks = {"keys": [k.as_dict(private=False) for k in self.keys]}
        return type("Response", (), {"json": lambda _self: jwks})()


@pytest.fixture
def oidc(make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> OIDCAuthenticator:
    from app.auth import get_authenticator

    authenticator = get_authenticator(make_app(**OIDC, allow_all=True))
    assert isinstance(authenticator, OIDCAuthenticator)
    # Discovery as the provider published it (the fetch itself: tests/browser).
    authenticator._metadata = {
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/jwks",
        "authorization_endpoint": f"{ISSUER}/auth",
    }
    authenticator._metadata_until = time.monotonic() + 3600
    provider = FakeProvider(KEY)
    monkeypatch.setattr(authenticator, "_get", provider.get)
    authenticator.provider = provider  # type: ignore[attr-defined]
    return authenticator


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": "hub", "sub": "u-1", "exp": now + 300, "iat": now, "nonce": NONCE}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def signed(body: dict[str, Any], key: Any = KEY, alg: str = "RS256", kid: str | None = "k1") -> str:
    header = {"alg": alg, **({"kid": kid} if kid else {})}
    return jwt.encode(header, body, key, algorithms=[alg])


def test_a_good_id_token_gives_its_claims(oidc: OIDCAuthenticator) -> None:
    assert oidc.verify_id_token(signed(claims()), NONCE)["sub"] == "u-1"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"nonce": "another"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"iss": "https://evil.example.org"}, "iss"),
        ({"iss": None}, "iss"),
        ({"aud": "another-client"}, "aud"),
        ({"aud": None}, "aud"),
        ({"exp": -3600}, "exp"),  # seconds from now (the claims are made when the test runs)
        ({"exp": None}, "exp"),
    ],
)
def test_each_claim_is_checked(oidc: OIDCAuthenticator, changes: dict[str, Any], why: str) -> None:
    if changes.get("exp") is not None:
        changes = {**changes, "exp": int(time.time()) + changes["exp"]}
    with pytest.raises(Forbidden, match="did not check out") as refused:
        oidc.verify_id_token(signed(claims(**changes)), NONCE)
    assert why in refused.value.message


def test_a_token_signed_by_another_key_of_the_same_kid_is_refused(
    oidc: OIDCAuthenticator,
) -> None:
    forged = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(Forbidden):
        oidc.verify_id_token(signed(claims(), key=forged), NONCE)


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_symmetric_or_unsigned_tokens_are_refused(oidc: OIDCAuthenticator, alg: str) -> None:
    # HMAC keyed by what an attacker could know (the client secret) or no signature.
    if alg == "none":
        header = jwt.encode({"alg": "HS256"}, claims(), OctKey.import_key("s" * 32))
        head, body, _ = header.split(".")
        token = f"eyJhbGciOiJub25lIn0.{body}."
    else:
        token = jwt.encode({"alg": alg, "kid": "k1"}, claims(), OctKey.import_key("secret" * 6))
    with pytest.raises(Forbidden):
        oidc.verify_id_token(token, NONCE)


def test_an_unknown_kid_fetches_the_keys_again_once_then_verifies(
    oidc: OIDCAuthenticator,
) -> None:
    provider = oidc.provider  # type: ignore[attr-defined]
    oidc.verify_id_token(signed(claims()), NONCE)
    oidc.verify_id_token(signed(claims()), NONCE)
    assert provider.fetches == 1
    # The provider rotates to an EC key: the hub has not seen k2, so it fetches again.
    rotated = ECKey.generate_key("P-256", parameters={"kid": "k2"})
    provider.keys.append(rotated)
    token = signed(claims(), key=rotated, alg="ES256", kid="k2")
    assert oidc.verify_id_token(token, NONCE)["sub"] == "u-1"
    assert provider.fetches == 2
    # A kid the provider does not have: fetched again, then refused.
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k9"})
    with pytest.raises(Forbidden):
        oidc.verify_id_token(signed(claims(), key=stranger, kid="k9"), NONCE)
    assert provider.fetches == 3
    assert isinstance(oidc._keys, KeySet)


def test_each_login_sends_its_own_nonce_and_takes_only_an_id_token_carrying_it(
    oidc: OIDCAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pending = oidc.begin()
    assert parse_qs(urlsplit(url).query)["nonce"] == [pending["nonce"]]
    _other_url, other = oidc.begin()
    assert other["nonce"] != pending["nonce"]
    # The callback: the token endpoint sends an id token made for this login, or for another
    # (replayed from it, or injected): only the first logs in.
    callback = {"state": pending["state"], "code": "c0de"}
    for nonce, name in ((other["nonce"], None), (pending["nonce"], "ann")):
        id_token = signed(claims(nonce=nonce, preferred_username="ann"))
        monkeypatch.setattr(
            oidc, "_fetch_token", lambda code, verifier, t=id_token: {"id_token": t}
        )
        if name is None:
            with pytest.raises(Forbidden, match="nonce"):
                oidc.finish(pending, callback)
        else:
            assert oidc.finish(pending, callback).name == name
