"""Certificates of the OPC UA server, in the folders UaExpert's users know: ``own/``, ``trusted/``, ``rejected/``.

- :func:`ensure_server_certificate` makes the server's self-signed
  certificate and key in ``own/`` on first start and reuses them afterwards;
  it never overwrites them and refuses damaged files.
- :class:`TrustList` holds the trusted client certificates of
  ``security.trust_dir`` and is asyncua's certificate validator; the
  certificate of every client it refuses goes to ``security.rejected_dir``,
  from where moving it to the trust list trusts it (no restart).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from plc_anna.server.endpoint import channel_is_unsecured

logger = logging.getLogger(__name__)

#: The folder of config_dir that holds the server's own certificate and key.
OWN_DIR = "own"
#: File names of the server certificate (DER) and its private key (PEM, PKCS#8, unencrypted, mode 0600).
CERT_FILE, KEY_FILE = "server_cert.der", "server_key.pem"
CERT_VALIDITY_DAYS = 3650
#: rejected/ keeps at most this many certificates (a flood of handshakes must not fill the disk).
REJECTED_LIMIT = 1000
RSA_KEY_BITS = 2048


# ---------------------------------------------------------------- server certificate

def ensure_server_certificate(config_dir: str | Path, hostname: str = "127.0.0.1",
                              application_uri: str = "urn:localhost:plc-anna") -> tuple[Path, Path]:
    """The server's certificate and key in ``config_dir/own``, generated on the first call.

    The first call (neither file exists) creates the folder if needed and
    writes a self-signed certificate (2048-bit RSA, SHA-256, valid 10 years,
    subjectAltName: ``application_uri``, ``hostname`` and this machine's host
    name) and its key. Later calls check and reuse the files and never write
    them; a host name missing from the certificate is logged, not fixed
    (delete both files to make a new pair, then clients must trust the new
    certificate). A pair that an earlier version kept in ``config_dir`` itself
    is moved into ``own/`` once.

    Returns
    -------
    (cert_path, key_path)

    Raises
    ------
    ValueError
        Naming the file, if only one of the two exists, if either cannot be
        read or parsed, or if they do not belong together. Nothing is
        regenerated silently: a changed certificate would break every
        client's trust in the server.
    """
    directory = Path(config_dir) / OWN_DIR
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    _move_legacy_pair(Path(config_dir), directory)
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if have_cert and have_key:
        cert = _read_certificate(cert_path)
        key = _read_private_key(key_path)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise ValueError(f"{cert_path} does not belong to the key {key_path}: restore the matching pair "
                             "or delete both to generate a new one")
        if not _names_host(cert, hostname):
            logger.warning("the server certificate %s does not name host %s; clients that check host names "
                           "will refuse it (delete %s and %s to generate a new pair)",
                           cert_path, hostname, cert_path, key_path)
        return cert_path, key_path
    if have_cert or have_key:
        present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
        raise ValueError(f"{missing} is missing but {present} exists: restore {missing.name}, or delete "
                         f"{present.name} to generate a new certificate and key")
    directory.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    cert = _self_signed_certificate(key, hostname, application_uri)
    _write_new(key_path, cert_gen.dump_private_key_as_pem(key), mode=0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.DER), mode=0o644)
    logger.info("generated the server certificate %s (SHA-1 thumbprint %s) and key %s",
                cert_path, cert.fingerprint(hashes.SHA1()).hex(), key_path)
    return cert_path, key_path


def _move_legacy_pair(config_dir: Path, own: Path) -> None:
    """Move a certificate and key kept in ``config_dir`` itself (before ``own/``) into ``own/``, once."""
    legacy = [config_dir / CERT_FILE, config_dir / KEY_FILE]
    present = [path for path in legacy if path.exists()]
    if not present or any((own / path.name).exists() for path in legacy):
        return
    if len(present) == 1:
        missing = next(path for path in legacy if path not in present)
        raise ValueError(f"{missing} is missing but {present[0]} exists: restore {missing.name}, or delete "
                         f"{present[0].name} to generate a new certificate and key in {own}")
    own.mkdir(parents=True, exist_ok=True)
    for path in legacy:
        os.replace(path, own / path.name)
    logger.info("moved the server certificate and key from %s into %s", config_dir, own)


def certificate_application_uri(cert_path: str | Path) -> str | None:
    """The ApplicationUri a certificate file (DER or PEM) names in its subjectAltName, or None.

    Raises ValueError, naming the file, if it is not a readable certificate.
    """
    cert = _read_certificate(Path(cert_path))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _self_signed_certificate(key: rsa.RSAPrivateKey, hostname: str, application_uri: str) -> x509.Certificate:
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        alt_names.append(x509.DNSName(hostname))
    machine = socket.gethostname()
    if machine and machine != hostname:  # asyncua's start-up check (and some clients) look for it
        alt_names.append(x509.DNSName(machine))
    return cert_gen.generate_self_signed_app_certificate(
        key, "plc-anna server", {"organizationName": "plc-anna"}, alt_names,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=CERT_VALIDITY_DAYS)


def _names_host(cert: x509.Certificate, hostname: str) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        return ipaddress.ip_address(hostname) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        return hostname in san.get_values_for_type(x509.DNSName)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet (O_EXCL: never overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None


def _read_certificate(path: Path) -> x509.Certificate:
    data = _read_bytes(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable X.509 certificate (DER or PEM): {exc}") from None


def _read_private_key(path: Path) -> rsa.RSAPrivateKey:
    data = _read_bytes(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise ValueError(f"{path}: not a readable unencrypted private key (PEM or DER): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key (OPC UA's RSA policies need one)")
    return key


# ---------------------------------------------------------------- trust list

class TrustList:
    """The trusted client certificates: every ``.der``, ``.pem``, ``.crt`` or ``.cer`` file of a directory.

    A client certificate is trusted if it is one of them, or if it chains to
    one of them that is a CA. The directory is created (empty) if missing and
    re-read when its files change, so trusting a new client needs no restart.

    An instance is an asyncua certificate validator
    (``server.set_certificate_validator(trust_list)``): it checks validity
    dates, that the client's ApplicationUri is in its certificate, and trust.
    It also serves as the ``trust_store`` of asyncua's ``CertificateValidator``.

    Raises
    ------
    ValueError
        On construction or :meth:`reload`, naming the file, if a certificate
        file cannot be parsed, or if ``trust_dir`` is not a directory.
    """

    SUFFIXES = (".der", ".pem", ".crt", ".cer")
    OPTIONS = (CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
               | CertificateValidatorOptions.TRUSTED | CertificateValidatorOptions.PEER_CLIENT)

    def __init__(self, trust_dir: str | Path, options: CertificateValidatorOptions | None = None,
                 rejected_dir: str | Path | None = None) -> None:
        self.trust_dir = Path(trust_dir)
        self.rejected_dir = Path(rejected_dir) if rejected_dir is not None else None
        for what, directory in (("trust", self.trust_dir), ("rejected", self.rejected_dir)):
            if directory is None:
                continue
            if directory.exists() and not directory.is_dir():
                raise ValueError(f"{what} directory {directory} is not a directory")
            directory.mkdir(parents=True, exist_ok=True)
        self._certs: tuple[x509.Certificate, ...] = ()
        self._der: frozenset[bytes] = frozenset()
        self.refusals = 0
        """Client certificates refused since the start (:meth:`reject` counts them)."""
        self._signature: tuple = ()
        # asyncua's TrustStore supplies the verification policy (CA certificates need basicConstraints ca=true)
        self._policy = TrustStore([], []).policy_builder
        self._validator = CertificateValidator(options if options is not None else self.OPTIONS, trust_store=self)
        self.reload()

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The trusted certificates as last loaded."""
        return self._certs

    def _files(self) -> list[Path]:
        return sorted(p for p in self.trust_dir.iterdir()
                      if p.suffix.lower() in self.SUFFIXES and not p.name.startswith(".") and p.is_file())

    def __bool__(self) -> bool:
        # asyncua's CertificateValidator skips the trust check when its trust store is falsy:
        # an empty list must still refuse everyone.
        return True

    def _current_signature(self) -> tuple:
        try:
            return tuple((p.name, st.st_mtime_ns, st.st_size) for p in self._files() for st in [p.stat()])
        except OSError:
            return ()

    def reload(self) -> None:
        """Read the directory again. Raises ValueError naming a file that cannot be parsed."""
        signature = self._current_signature()
        certs: list[x509.Certificate] = []
        for path in self._files():
            data = _read_bytes(path)
            try:
                if data.lstrip().startswith(b"-----BEGIN"):
                    certs.extend(x509.load_pem_x509_certificates(data))
                else:
                    certs.append(x509.load_der_x509_certificate(data))
            except ValueError as exc:
                raise ValueError(f"{path}: not a readable X.509 certificate (DER or PEM): {exc}") from None
        self._certs = tuple(certs)
        self._der = frozenset(c.public_bytes(serialization.Encoding.DER) for c in certs)
        self._signature = signature
        logger.info("trust list %s: %d certificate(s)", self.trust_dir, len(certs))

    def _refresh(self) -> None:
        if self._current_signature() != self._signature:
            try:
                self.reload()
            except ValueError as exc:  # keep serving with the previous list
                logger.error("trust list not reloaded, the previous one stays in force: %s", exc)

    def is_trusted(self, certificate: x509.Certificate | bytes) -> bool:
        """True if ``certificate`` (an x509 object or DER bytes) is in the list or issued by a CA in it."""
        self._refresh()
        if isinstance(certificate, (bytes, bytearray)):
            try:
                certificate = x509.load_der_x509_certificate(bytes(certificate))
            except ValueError:
                return False
        if certificate.public_bytes(serialization.Encoding.DER) in self._der:
            return True
        if not self._certs:
            return False
        verifier = self._policy.store(x509.verification.Store(list(self._certs))).build_client_verifier()
        try:
            verifier.verify(certificate, [])
        except (x509.verification.VerificationError, ValueError):
            return False
        return True

    def is_revoked(self, certificate: x509.Certificate) -> bool:
        """No revocation lists yet: never revoked (asyncua's validator asks)."""
        return False

    def reject(self, certificate: x509.Certificate | bytes) -> Path | None:
        """Count a refused client certificate and keep it in :attr:`rejected_dir` (DER, named by subject and
        thumbprint).

        Returns the file (already there when the client tried before), or None
        without a rejected directory, for bytes that are no certificate, or
        when the directory holds :data:`REJECTED_LIMIT` files already.
        """
        self.refusals += 1
        if self.rejected_dir is None:
            return None
        if isinstance(certificate, (bytes, bytearray)):
            try:
                certificate = x509.load_der_x509_certificate(bytes(certificate))
            except ValueError:
                return None
        names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(names[0].value) if names else "client").strip("_")[:64]
        path = self.rejected_dir / f"{name or 'client'}_{certificate.fingerprint(hashes.SHA1()).hex()}.der"
        if path.exists():
            return path
        try:
            if sum(1 for _ in self.rejected_dir.iterdir()) >= REJECTED_LIMIT:
                logger.warning("%s holds %d files: not keeping another refused certificate", self.rejected_dir,
                               REJECTED_LIMIT)
                return None
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
            os.replace(tmp, path)
        except OSError as exc:
            logger.error("could not keep the refused certificate in %s: %s", self.rejected_dir, exc)
            return None
        return path

    async def __call__(self, certificate: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        """asyncua's certificate validator hook: raises ``ServiceError`` for a refused certificate.

        A certificate sent over a None channel is not checked: it proves nothing there, and OPC 10000-4
        (5.6.2) has the server ignore it (node-opcua and UaExpert send theirs on None too). Whether such
        a session is allowed at all is the user directory's business.
        """
        if channel_is_unsecured():
            return
        try:
            await self._validator.validate(certificate, app_description)
        except ServiceError as exc:
            kept = self.reject(certificate)
            where = (f"kept as {kept}; to trust it, move it into {self.trust_dir}" if kept is not None
                     else f"to trust it, copy it into {self.trust_dir}")
            logger.warning("refused client certificate %s (SHA-1 thumbprint %s, ApplicationUri %s): %s; %s",
                           certificate.subject.rfc4514_string(), certificate.fingerprint(hashes.SHA1()).hex(),
                           app_description.ApplicationUri, ua.StatusCode(exc.code).name, where)
            raise
