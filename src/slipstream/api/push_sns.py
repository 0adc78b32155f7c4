"""Which Amazon SNS HTTP(S) deliveries to trust, checked the way AWS documents it.

A message is trusted only when all of these hold:
- its `TopicArn` is one of `SLIPSTREAM_SNS_TOPIC_ARNS`;
- its `SigningCertURL` is `https://sns.<region>.amazonaws.com[.cn]/….pem`, the region being the
  topic's (no other host, scheme, port or user part);
- its `Signature` verifies against that certificate's RSA key with PKCS#1 v1.5: SHA1 for
  `SignatureVersion` 1, SHA256 for 2, over the string to sign: `Name\\nValue\\n` for each signed
  field, in the fixed order below (`Subject` only when present).

Certificates are fetched once per URL and kept (a few are in use at a time; AWS rotates them by
publishing a new URL). The fetcher is injected, so tests bring a certificate of their own.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
MESSAGE_TYPES = frozenset({NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION})

NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SNS_HOST = re.compile(r"sns\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?")
CACHE_SIZE = 32
FETCH_TIMEOUT = 5.0
MAX_CERTIFICATE_BYTES = 64 * 1024

FetchCertificate = Callable[[str], Awaitable[bytes]]
ConfirmSubscription = Callable[[str], Awaitable[None]]


class Untrusted(Exception):
    """A message that is not provably from SNS for a configured topic (answered 403)."""


class CertificateUnavailable(Exception):
    """The signing certificate could not be fetched now; SNS should try again later (503)."""


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    fields = NOTIFICATION_FIELDS if message.get("Type") == NOTIFICATION else CONFIRMATION_FIELDS
    parts: list[str] = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise Untrusted(f"the message has no {name} (a string) to check the signature over")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def region_of(topic_arn: str) -> str:
    """`arn:aws:sns:eu-west-1:123456789012:flights` → `eu-west-1`."""
    parts = topic_arn.split(":")
    return parts[3] if len(parts) == 6 else ""


def check_sns_url(url: Any, region: str, what: str, *, pem: bool = False) -> str:
    """`url` when it is https on the SNS host of `region` (ending in .pem if `pem`), else Untrusted."""
    if not isinstance(url, str):
        raise Untrusted(f"the message has no {what}")
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise Untrusted(f"{what} {url!r} is not an https URL")
    host = SNS_HOST.fullmatch(parts.netloc)
    if host is None:
        raise Untrusted(f"{what} {url!r} is not on sns.<region>.amazonaws.com")
    if host.group(1) != region:
        raise Untrusted(f"{what} {url!r} is not in the topic's region {region!r}")
    if pem and not parts.path.endswith(".pem"):
        raise Untrusted(f"{what} {url!r} does not name a .pem certificate")
    return url


class SnsVerifier:
    """Checks SNS messages; keeps each signing certificate it fetched, by URL."""

    def __init__(self, fetch: FetchCertificate, cache_size: int = CACHE_SIZE) -> None:
        self.fetch = fetch
        self.cache_size = cache_size
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()

    async def verify(self, message: Mapping[str, Any], topics: frozenset[str]) -> None:
        """Return when `message` is trusted; raise Untrusted or CertificateUnavailable."""
        kind = message.get("Type")
        if kind not in MESSAGE_TYPES:
            raise Untrusted(f"message type {kind!r} is not one SNS sends to HTTP endpoints")
        topic = message.get("TopicArn")
        if not isinstance(topic, str) or topic not in topics:
            raise Untrusted(f"topic {topic!r} is not in SLIPSTREAM_SNS_TOPIC_ARNS")
        version = message.get("SignatureVersion")
        algorithm = HASHES.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise Untrusted(f"SignatureVersion {version!r} is not 1 or 2")
        url = check_sns_url(
            message.get("SigningCertURL"), region_of(topic), "SigningCertURL", pem=True
        )
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise Untrusted("the Signature is not base64") from None
        signed = string_to_sign(message)
        key = (await self._certificate(url)).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Untrusted("the signing certificate does not hold an RSA key")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Untrusted("the signature does not match the message") from None

    async def _certificate(self, url: str) -> x509.Certificate:
        certificate = self._certificates.get(url)
        if certificate is None:
            try:
                pem = await self.fetch(url)
            except Exception as exc:  # any failure to fetch is worth a retry by SNS
                raise CertificateUnavailable(f"could not fetch {url}: {exc}") from exc
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise Untrusted(f"{url} is not a PEM certificate") from None
            self._certificates[url] = certificate
            while len(self._certificates) > self.cache_size:
                self._certificates.popitem(last=False)
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Untrusted(f"the signing certificate {url} is not valid now")
        return certificate


async def fetch_certificate(url: str) -> bytes:
    """GET a signing certificate over https, without following redirects."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
        response = await client.get(url)
        response.raise_for_status()
        if len(response.content) > MAX_CERTIFICATE_BYTES:
            raise ValueError(f"the certificate is over {MAX_CERTIFICATE_BYTES} bytes")
        return response.content


async def confirm_subscription(url: str) -> None:
    """Visit a SubscribeURL (already checked to be on the SNS host), as AWS asks."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
        response = await client.get(url)
        response.raise_for_status()
