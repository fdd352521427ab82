"""A real OpenID provider for the tests: the npm package oidc-provider (tests/oidc/).

`start_provider(folder, redirect_uri)` makes a TLS certificate for 127.0.0.1 and a
signing key, starts `node tests/oidc/provider.mjs` on a free loopback port and waits
for its discovery document. ACCOUNTS are who may sign in (the provider's
development login form takes any password).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

from tests.helpers import free_port, wait_for

HERE = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "flaskhub-test"
CLIENT_SECRET = "a-client-secret-for-tests"
ACCOUNTS = {
    "alice": {"preferred_username": "Alice", "groups": ["staff"], "email": "alice@example.org"},
    "carol": {"preferred_username": "carol", "groups": ["staff", "ops"]},
    "bob": {"preferred_username": "bob", "groups": ["students"]},
    "eve": {"preferred_username": "eve/../root", "groups": ["staff"]},
    # Accounts of their own (another sub each) whose names are kate or look like it.
    "kate": {"preferred_username": "kate", "groups": ["staff"]},
    "kate-upper": {"preferred_username": "Kate", "groups": ["staff"]},
    "kate-kelvin": {"preferred_username": "\u212aate", "groups": ["staff"]},
    "kate-spaces": {"preferred_username": " kate\u3000", "groups": ["staff"]},
    "kate-ascii-spaces": {"preferred_username": "kate ", "groups": ["staff"]},
    "kate-fullwidth": {"preferred_username": "ｋａｔｅ", "groups": ["staff"]},
    "kate-bold": {"preferred_username": "𝐤𝐚𝐭𝐞", "groups": ["staff"]},
    "kate-nbsp": {"preferred_username": "kate\u00a0", "groups": ["staff"]},
    "kate-cyrillic": {"preferred_username": "kаte", "groups": ["staff"]},  # Cyrillic а
}


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert.pem doubles as the CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def signing_keys() -> dict[str, object]:
    """A fresh RSA signing key (a new kid each time: a restart rotates the key)."""
    key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex, "use": "sig"})
    return {"keys": [key.as_dict(private=True)]}


@dataclass
class OpenIDProvider:
    folder: Path
    redirect_uris: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.folder / "cert.pem"

    def start(self) -> None:
        """Start (again, with a new signing key) and wait for the discovery document."""
        if not self.ca_file.exists():
            make_certificate(self.folder)
        client = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": [
                u.replace("/hub/oauth_callback", "/hub/login") for u in self.redirect_uris
            ],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }
        env = {
            **os.environ,
            "PORT": str(self.port),
            "TLS_CERT": str(self.ca_file),
            "TLS_KEY": str(self.folder / "key.pem"),
            "JWKS": json.dumps(signing_keys()),
            "CLIENT": json.dumps(client),
            "ACCOUNTS": json.dumps(ACCOUNTS),
        }
        with (self.folder / "provider.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["node", str(HERE / "provider.mjs")], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._answers, timeout=30)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError((self.folder / "provider.log").read_text()[-3000:])
        try:
            url = f"{self.issuer}/.well-known/openid-configuration"
            return requests.get(url, verify=str(self.ca_file), timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def fault(self, kind: str) -> None:
        """Arm a fault for the next token response (test hook of provider.mjs)."""
        response = requests.get(
            f"{self.issuer}/_test/fault", params={"kind": kind}, verify=str(self.ca_file), timeout=5
        )
        response.raise_for_status()

    def set_groups(self, account: str, groups: list[str]) -> None:
        """Put an account in exactly these groups, as the provider's administrators would."""
        response = requests.get(
            f"{self.issuer}/_test/groups",
            params={"account": account, "groups": ",".join(groups)},
            verify=str(self.ca_file),
            timeout=5,
        )
        response.raise_for_status()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
