"""The access line never carries a credential from the query string."""

from __future__ import annotations

import pytest

from app.logs import scrub


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        ("/hub/api/users", "/hub/api/users"),
        ("/hub/api/users?offset=2&limit=5", "/hub/api/users?offset=2&limit=5"),
        ("/user/a/api?token=abc123", "/user/a/api?token=%5Bsecret%5D"),
        (
            "/hub/oauth_callback?code=xyz&state=s1",
            "/hub/oauth_callback?code=%5Bsecret%5D&state=%5Bsecret%5D",
        ),
        ("/x?_xsrf=t&next=/hub/home", "/x?_xsrf=%5Bsecret%5D&next=%2Fhub%2Fhome"),
        ("/x?TOKEN=abc", "/x?TOKEN=%5Bsecret%5D"),
        ("/x?access_token=abc&a=1", "/x?access_token=%5Bsecret%5D&a=1"),
        ("/x?token", "/x?token=%5Bsecret%5D"),
        ("/x?a=1&token=abc&token=def", "/x?a=1&token=%5Bsecret%5D&token=%5Bsecret%5D"),
        ("/x?tok%65n=abc", "/x?token=%5Bsecret%5D"),
        ("/hub/api/authorizations/token/abc123", "/hub/api/authorizations/token/[secret]"),
        ("/hub/api/authorizations/token/a/b?x=1", "/hub/api/authorizations/token/[secret]?x=1"),
        ("/hub/api/authorizations/cookie/c/v", "/hub/api/authorizations/cookie/[secret]"),
        ("/hub/api/authorizations/token", "/hub/api/authorizations/token"),
    ],
)
def test_credentials_in_the_query_are_not_logged(uri: str, logged: str) -> None:
    assert scrub(uri) == logged
