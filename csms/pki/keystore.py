"""The operator's certificate authorities: a certificate chain and a way to sign, nothing more.

:class:`CertificateAuthority` is the interface the PKI signs through; :class:`FileCertificateAuthority`
reads a PEM key from a file. A hardware security module sits behind the same interface (its
``sign`` hands the to-be-signed certificate to the HSM). Key material never leaves this module:
it is not logged, not in ``repr``, not in the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csms.pki.certs import load_chain
from csms.pki.errors import KeyStoreError, PkiError

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateAuthority(Protocol):
    """A CA that can sign certificates; ``chain`` is its certificate first, then its issuers up to
    (not including) the root."""

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def chain(self) -> tuple[x509.Certificate, ...]: ...

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign ``builder`` (issuer name set by the caller) with the CA's key."""
        ...


class KeyCertificateAuthority:
    """A CA whose private key is in memory (loaded from a file, or made by a test)."""

    def __init__(self, chain: tuple[x509.Certificate, ...], key: SigningKey) -> None:
        if not chain:
            raise KeyStoreError("a CA needs its certificate")
        if chain[0].public_key() != key.public_key():
            raise KeyStoreError(
                f"the key does not belong to the CA certificate {chain[0].subject.rfc4514_string()}"
            )
        self._chain = chain
        self.__key = key

    @property
    def certificate(self) -> x509.Certificate:
        return self._chain[0]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self.__key, hashes.SHA256())

    def __repr__(self) -> str:
        return f"KeyCertificateAuthority({self.certificate.subject.rfc4514_string()})"


def load_file_authority(
    certificate_file: str, key_file: str, password: bytes | None = None
) -> KeyCertificateAuthority:
    """A CA from a PEM certificate chain file (the CA first) and a PEM private key file."""
    try:
        chain = tuple(load_chain(Path(certificate_file).read_bytes()))
    except OSError as exc:
        raise KeyStoreError(f"{certificate_file}: {exc.strerror}") from None
    except PkiError as exc:
        raise KeyStoreError(f"{certificate_file}: {exc}") from None
    try:
        data = Path(key_file).read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"{key_file}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError):
        # The loader's message could quote the file; say only which file failed.
        raise KeyStoreError(f"{key_file}: not a readable PEM private key (or wrong password)") from None
    del data
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyStoreError(f"{key_file}: only EC and RSA CA keys are supported")
    return KeyCertificateAuthority(chain, key)
