"""A throwaway OpenLDAP (Debian's slapd) on a free loopback port, with a test directory.

`start_slapd(folder)` writes a slapd.conf (mdb database, its own directory, a
self-signed certificate for 127.0.0.1 that is its own CA file), starts `slapd -d 0`
in the foreground on ldap://127.0.0.1:<port> (StartTLS offered) and
ldaps://127.0.0.1:<another port>, waits until it answers, and loads DIRECTORY with
ldapadd as the directory manager (ROOT_DN).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, wait_for
from tests.oidc_server import make_certificate

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=manager,{SUFFIX}"
ROOT_PASSWORD = "manager-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
# uid -> password; j+doe needs escaping in a DN (uid=j\+doe,...).
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "j+doe": "jdoe-pw"}
MEMBERS = {"staff": ["alice", "carol", "j+doe"], "ops": ["carol"]}

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
TLSCertificateFile {folder}/cert.pem
TLSCertificateKeyFile {folder}/key.pem
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {folder}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""


def person_dn(uid: str) -> str:
    return f"uid={uid.replace('+', chr(92) + '+')},{PEOPLE}"


def directory_ldif() -> str:
    """The test directory: people with passwords, groups (groupOfNames) of members."""
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for uid, password in PASSWORDS.items():
        entries.append(
            f"dn: {person_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n"
            f"sn: {uid}\nuserPassword: {password}"
        )
    for group, uids in MEMBERS.items():
        members = "\n".join(f"member: {person_dn(uid)}" for uid in uids)
        entries.append(
            f"dn: cn={group},{GROUPS}\nobjectClass: groupOfNames\ncn: {group}\n{members}"
        )
    return "\n\n".join(entries) + "\n"


@dataclass
class Slapd:
    url: str  # ldap:// (StartTLS offered, not required)
    ldaps_url: str
    ca_file: Path  # the CA file that trusts the server's certificate
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_slapd(folder: Path) -> Slapd:
    """Start slapd with the test directory loaded; stop() it when done."""
    (folder / "db").mkdir(parents=True)
    ca_file, _key = make_certificate(folder)
    conf = folder / "slapd.conf"
    conf.write_text(
        CONF.format(folder=folder, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD)
    )
    url, ldaps_url = f"ldap://127.0.0.1:{free_port()}", f"ldaps://127.0.0.1:{free_port()}"
    with (folder / "slapd.log").open("wb") as log:
        process = subprocess.Popen(
            ["/usr/sbin/slapd", "-f", str(conf), "-h", f"{url}/ {ldaps_url}/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    slapd = Slapd(url, ldaps_url, ca_file, process)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {(folder / 'slapd.log').read_text()[-2000:]}")
        probe = ["ldapwhoami", "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PASSWORD]
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0

    try:
        wait_for(answers, timeout=30)
        subprocess.run(
            ["ldapadd", "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
            input=directory_ldif().encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )
    except BaseException:
        slapd.stop()
        raise
    return slapd
