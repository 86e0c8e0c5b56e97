"""Credential vault: AES-256-GCM encryption of tenant connection configs at rest.

Each ciphertext is a small JSON envelope `{"v": 1, "kid": …, "nonce": …, "ct": …}`. The key id is
the first 16 hex digits of SHA-256 over the key, so a row says which key sealed it without revealing
it. The config row's identity (`accounting_configs/<id>/<tenant>/<system>`) is bound as associated
data: a ciphertext copied onto another row fails authentication instead of decrypting there.

Keys come from `CREDENTIAL_ENCRYPTION_KEY` (base64 of 32 bytes) and, during a rotation,
`CREDENTIAL_ENCRYPTION_OLD_KEYS` (comma-separated, same form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_VARIABLE = "CREDENTIAL_ENCRYPTION_KEY"
OLD_KEYS_VARIABLE = "CREDENTIAL_ENCRYPTION_OLD_KEYS"
_ENVELOPE_VERSION = 1


class VaultError(RuntimeError):
    """A key is missing or malformed, or a ciphertext cannot be opened."""


def generate_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _decode_key(text: str, variable: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultError(
            f"{variable} is not valid base64; generate a key with `hub keys generate`."
        ) from None
    if len(key) != 32:
        raise VaultError(
            f"{variable} must be base64 of 32 bytes (AES-256), got {len(key)} bytes; "
            "generate one with `hub keys generate`."
        )
    return key


def config_aad(config_id: int, tenant_id: str, system: str) -> str:
    """The associated data that ties a ciphertext to one `hub.accounting_configs` row."""
    return f"accounting_configs/{config_id}/{tenant_id}/{system}"


@dataclass(frozen=True)
class Vault:
    """Encrypts with the current key; decrypts with whichever known key sealed the envelope."""

    current: bytes
    old: tuple[bytes, ...] = ()

    @classmethod
    def from_strings(cls, current: str | None, old: str | None = None) -> Vault:
        if not current or not current.strip():
            raise VaultError(
                f"{KEY_VARIABLE} is not set; it must hold base64 of 32 bytes. "
                "Generate one with `hub keys generate` and export it."
            )
        old_keys = tuple(
            _decode_key(part, OLD_KEYS_VARIABLE) for part in (old or "").split(",") if part.strip()
        )
        return cls(_decode_key(current, KEY_VARIABLE), old_keys)

    @classmethod
    def from_env(cls) -> Vault:
        return cls.from_strings(os.environ.get(KEY_VARIABLE), os.environ.get(OLD_KEYS_VARIABLE))

    @property
    def current_key_id(self) -> str:
        return key_id(self.current)

    def _keys_by_id(self) -> dict[str, bytes]:
        return {key_id(key): key for key in (self.current, *self.old)}

    def encrypt(self, payload: dict[str, Any], aad: str) -> str:
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        ciphertext = AESGCM(self.current).encrypt(nonce, plaintext, aad.encode())
        envelope = {
            "v": _ENVELOPE_VERSION,
            "kid": self.current_key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ciphertext).decode(),
        }
        return json.dumps(envelope, separators=(",", ":"))

    def decrypt(self, envelope_text: str, aad: str) -> dict[str, Any]:
        envelope = _parse_envelope(envelope_text)
        key = self._keys_by_id().get(envelope["kid"])
        if key is None:
            raise VaultError(
                f"the credentials were sealed with key {envelope['kid']}, which is neither "
                f"{KEY_VARIABLE} nor in {OLD_KEYS_VARIABLE}; add that key to "
                f"{OLD_KEYS_VARIABLE} and run `hub keys rotate`."
            )
        try:
            nonce = base64.b64decode(envelope["nonce"])
            ciphertext = base64.b64decode(envelope["ct"])
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, aad.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise VaultError(
                "the stored credentials failed authentication: they were altered or belong to "
                "another config row. Re-enter them with `hub tenants add`."
            ) from None
        return json.loads(plaintext)

    def needs_rotation(self, envelope_text: str) -> bool:
        return _parse_envelope(envelope_text)["kid"] != self.current_key_id


def _parse_envelope(text: str) -> dict[str, Any]:
    try:
        envelope = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise VaultError(
            "the stored credentials are not a vault envelope (corrupted row)."
        ) from None
    if not isinstance(envelope, dict) or envelope.get("v") != _ENVELOPE_VERSION:
        raise VaultError("the stored credentials are not a version-1 vault envelope.")
    if not all(isinstance(envelope.get(k), str) for k in ("kid", "nonce", "ct")):
        raise VaultError("the stored credentials envelope is missing kid, nonce or ct.")
    return envelope
