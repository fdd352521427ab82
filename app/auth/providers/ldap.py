"""authenticator = "ldap": a name and password checked by binding to an LDAP server (ldap3).

The user's DN comes from `ldap_bind_dn_template` (each template tried in turn,
the name escaped as an RDN value) or from a search under `ldap_search_base`
with `ldap_search_filter` (the name escaped for a filter), done anonymously or
as `ldap_bind_dn`. The password is then proved by binding as that DN; an
empty password is refused before anything is sent (LDAP would take it as an
anonymous bind). The bound entry's own `ldap_username_attribute` (uid), normalised,
must then be the normalised name typed: the directory's matching rules bind
look-alikes (`ａｌｉｃｅ`, `𝐚𝐥𝐢𝐜𝐞`) as `alice`, and a name the normalisation refuses
never reaches the directory. Groups (their `cn`) come from `ldap_group_search_filter`
under `ldap_group_search_base`. An unreachable server raises Unavailable.
"""

from __future__ import annotations

import logging
import math
import ssl
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from app.auth.authenticators import Authenticator, AuthResult
from app.outcomes import Invalid, LoginExpired, Unavailable
from app.users import normalize_username

log = logging.getLogger(__name__)


class LDAPAuthenticator(Authenticator):
    """Bind as the user (direct or search-then-bind); groups from a search."""

    def authenticate(self, name: str, password: str) -> AuthResult | None:
        username = normalize_username(name)
        if not password:
            return None
        try:
            return self._authenticate(username, password)
        except LDAPException as e:
            raise _unavailable(self.settings.ldap_url, e) from None

    def refreshes_without_state(self) -> bool:
        """With a service account (ldap_bind_dn) and groups, they are read again without
        the user's password: a user out of admin_groups loses admin within auth_refresh_age."""
        return bool(self.settings.ldap_bind_dn and self.settings.ldap_group_search_base)

    def refresh(self, name: str, auth_state: dict[str, Any]) -> AuthResult | None:
        """The user's groups now, searched as the service account; LoginExpired when their
        entry is gone, None without a service account."""
        if not self.refreshes_without_state():
            return None
        try:
            conn = self._service()
            try:
                dn = self._existing_dn(conn, name)
                if dn is None:
                    raise LoginExpired(f"The directory no longer has {name}: log in again.")
                return AuthResult(name, self._groups(conn, dn, name))
            finally:
                conn.unbind()
        except LDAPException as e:
            raise _unavailable(self.settings.ldap_url, e) from None

    def _existing_dn(self, conn: ldap3.Connection, username: str) -> str | None:
        """The DN of the user's entry as the directory has it now, or None."""
        s = self.settings
        if not s.ldap_bind_dn_template:
            found = self._search_dns(conn, username)
            return found[0] if len(found) == 1 else None
        for template in s.ldap_bind_dn_template:
            dn = template.format(username=escape_rdn(username))
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[])
            if any(e.get("type") == "searchResEntry" for e in conn.response or []):
                return dn
        return None

    def _authenticate(self, username: str, password: str) -> AuthResult | None:
        for dn in self._candidate_dns(username):
            conn = self._bind(dn, password)
            if conn is not None:
                try:
                    if not self._entry_names(conn, dn, username):
                        return None
                    return AuthResult(username, self._groups(conn, dn, username))
                finally:
                    conn.unbind()
        log.info("LDAP refused the password of %s", username)
        return None

    def _entry_names(self, conn: ldap3.Connection, dn: str, username: str) -> bool:
        """Whether the bound entry's own username attribute, normalised, is username.

        The directory's matching rules take look-alikes (fullwidth or mathematical
        letters, odd spaces) as the name, so a bind alone does not say whose entry it is.
        """
        attribute = self.settings.ldap_username_attribute
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attribute])
        values = [
            value
            for entry in conn.response or []
            if entry.get("type") == "searchResEntry"
            for value in _values(entry["attributes"].get(attribute))
        ]
        if any(_normal(str(value)) == username for value in values):
            return True
        log.warning(
            "LDAP entry %s was bound for %s, but its %s is %r: refused as a wrong password",
            dn,
            username,
            attribute,
            values,
        )
        return False

    def _candidate_dns(self, username: str) -> list[str]:
        """The DNs the user may be: from the templates, or the one entry the search finds."""
        s = self.settings
        if s.ldap_bind_dn_template:
            return [t.format(username=escape_rdn(username)) for t in s.ldap_bind_dn_template]
        # (ldap3's `with` leaves a connection that was bound before it open: unbind closes.)
        conn = self._service()
        try:
            found = self._search_dns(conn, username)
        finally:
            conn.unbind()
        if len(found) != 1:
            log.info("LDAP search for %s found %d entries (wanted one)", username, len(found))
            return []
        return found

    def _search_dns(self, conn: ldap3.Connection, username: str) -> list[str]:
        """The DNs ldap_search_filter finds under ldap_search_base for the user."""
        s = self.settings
        query = s.ldap_search_filter.format(username=escape_filter_chars(username))
        conn.search(s.ldap_search_base, query, ldap3.SUBTREE, attributes=[])
        return [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]

    def _groups(self, conn: ldap3.Connection, dn: str, username: str) -> frozenset[str] | None:
        """The cn of every group the user is in; None without ldap_group_search_base."""
        s = self.settings
        if not s.ldap_group_search_base:
            return None
        query = s.ldap_group_search_filter.format(
            dn=escape_filter_chars(dn), username=escape_filter_chars(username)
        )
        conn.search(s.ldap_group_search_base, query, ldap3.SUBTREE, attributes=["cn"])
        return frozenset(
            str(cn)
            for entry in conn.response or []
            if entry.get("type") == "searchResEntry"
            for cn in _values(entry["attributes"].get("cn"))
        )

    def _service(self) -> ldap3.Connection:
        """A connection bound as the service account (or anonymous), for searching."""
        s = self.settings
        conn = self._bind(s.ldap_bind_dn or None, s.ldap_bind_password or None)
        if conn is None:
            raise Unavailable(
                "The hub cannot search the LDAP directory: its service account "
                "(ldap_bind_dn) was refused. Tell the hub's administrators."
            )
        return conn

    def _bind(self, dn: str | None, password: str | None) -> ldap3.Connection | None:
        """A connection bound as dn, or None when the server refuses the credentials."""
        s = self.settings
        # ldap3 checks no certificate unless told to (its Tls() default is CERT_NONE).
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.ldap_ca_file or None)
        server = ldap3.Server(
            s.ldap_url, tls=tls, connect_timeout=s.ldap_timeout, get_info=ldap3.NONE
        )
        conn = ldap3.Connection(
            server,
            user=dn,
            password=password,
            receive_timeout=math.ceil(s.ldap_timeout),
            read_only=True,
        )
        try:
            conn.open()
            # ldap3 answers some failed StartTLS with False, not an exception: never bind
            # then (the password would go out in clear).
            if s.ldap_url.startswith("ldap://") and s.ldap_start_tls and not conn.start_tls():
                raise LDAPStartTLSError(f"StartTLS failed: {conn.last_error or conn.result}")
            if conn.bind():
                return conn
        except LDAPException:
            _close(conn)
            raise
        conn.unbind()
        return None


def _unavailable(url: str, e: LDAPException) -> Unavailable:
    log.error("LDAP server %s failed: %s", url, e)
    return Unavailable(
        "The login service (LDAP) cannot be reached right now: try again in a "
        "moment, and tell the hub's administrators if it lasts."
    )


def _close(conn: ldap3.Connection) -> None:
    """Close the socket of a connection that failed to open (ldap3 leaves it open)."""
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()
    try:
        conn.unbind()
    except LDAPException:
        pass  # it could not send the unbind on the closed socket: the error raised first counts


def _normal(name: str) -> str | None:
    """A directory's name in the normal form, or None if the normalisation refuses it."""
    try:
        return normalize_username(name)
    except Invalid:
        return None


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
