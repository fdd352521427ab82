"""app/grants.py: what a user holds through roles and shares, read in one statement."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from app.db import get_db
from app.grants import granted_scopes
from app.groups import get_groups
from app.models import Server
from app.roles import get_roles
from app.shares import ShareService
from app.users import get_users


def test_roles_and_shares_reach_a_user_through_a_group_and_leave_with_it(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    db = get_db(app)
    users = get_users(app)
    alice, bob = users.get_or_create("alice"), users.get_or_create("bob")
    get_roles(app).load(
        [
            {"name": "user", "scopes": ["self", "read:users:name"]},
            {"name": "reader", "scopes": ["read:groups"], "groups": ["team"]},
            {"name": "lister", "scopes": ["list:users"], "users": ["bob"]},
        ]
    )
    with db.write() as session:
        server = Server(user_id=alice.id, name="")
        session.add(server)
    ShareService(db).grant(
        server,
        ["access:servers!server=alice/"],
        user_id=None,
        group_id=get_groups(app).get("team").id,
    )
    assert sorted(granted_scopes(db, bob.id)) == ["list:users", "read:users:name", "self"]

    get_groups(app).add_members("team", ["bob"])
    assert sorted(granted_scopes(db, bob.id)) == [
        "access:servers!server=alice/",
        "list:users",
        "read:groups",
        "read:users:name",
        "self",
    ]

    get_groups(app).remove_members("team", ["bob"])
    assert sorted(granted_scopes(db, bob.id)) == ["list:users", "read:users:name", "self"]
