"""A throwaway certificate authority and server certificate, made at run time, for the fake APIs.

fal-client always builds https URLs (its host override changes the host, never the scheme), so a stand-in
for fal's queue must speak TLS with a certificate the client trusts. Nothing here is ever written to
the repository: each run makes a new CA (ECDSA P-256, valid for a day) and a leaf certificate for
127.0.0.1 / localhost signed by it. `write_ca` puts the CA's PEM where a test can point
`SSL_CERT_FILE` (httpx, the stdlib) and `REQUESTS_CA_BUNDLE` (requests) at it.

The extensions follow what strict verifiers ask for (Python 3.13 turns on VERIFY_X509_STRICT by
default): a critical basicConstraints and keyUsage on the CA, subject/authority key identifiers, and
serverAuth on the leaf, so the same material works on newer interpreters too.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TLSMaterial:
    """PEM bytes of a CA certificate and of a server certificate + key it signed."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def write_ca(self, path: str | Path) -> Path:
        """Write the CA certificate (what clients must trust) to `path` and return it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.ca_pem)
        return target

    def server_context(self) -> ssl.SSLContext:
        """An SSLContext that serves the leaf certificate (TLS 1.2+)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain only reads files: write them to a private temporary directory, load, delete.
        with tempfile.TemporaryDirectory(prefix="fake-tls-") as folder:
            cert = Path(folder) / "cert.pem"
            key = Path(folder) / "key.pem"
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            key.chmod(0o600)
            context.load_cert_chain(cert, key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sora-controller test stand-in"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_tls_material(hosts: tuple[str, ...] = DEFAULT_HOSTS, *, days: int = 1) -> TLSMaterial:
    """A fresh CA and a server certificate for `hosts` (IP addresses or DNS names)."""
    now = datetime.datetime.now(datetime.UTC)
    # A little slack backwards, so a client whose clock is a minute behind still accepts it.
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("sora-controller fake API CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    return TLSMaterial(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=leaf_cert.public_bytes(serialization.Encoding.PEM),
        key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
