"""OpenSSH public keys: parse and check one `authorized_keys` line."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
LINE = re.compile(r"^(?P<type>\S+)\s+(?P<blob>[A-Za-z0-9+/]+={0,2})(?:\s+(?P<comment>.*))?$")


class InvalidKey(ValueError):
    pass


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    blob: bytes
    comment: str

    @property
    def line(self) -> str:
        text = f"{self.key_type} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text

    @property
    def fingerprint(self) -> str:
        """As `ssh-keygen -l` prints it after "SHA256:"."""
        return base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")


def parse_public_key(text: str) -> PublicKey:
    """One key, e.g. "ssh-ed25519 AAAAC3Nz... me@laptop". The base64 part must decode to a key
    blob whose own type name matches the first word (what sshd checks too)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise InvalidKey("Paste exactly one public key (one line, from your .pub file).")
    match = LINE.match(lines[0])
    if not match:
        raise InvalidKey("That is not an OpenSSH public key: expected “type base64 comment”.")
    key_type = match["type"]
    if key_type not in KEY_TYPES:
        if "PRIVATE KEY" in text:
            raise InvalidKey("That is a private key. Paste the .pub file; keep the private key.")
        raise InvalidKey(f"Unsupported key type. Use one of: {', '.join(KEY_TYPES[:5])}.")
    try:
        blob = base64.b64decode(match["blob"], validate=True)
    except binascii.Error as error:
        raise InvalidKey("The key's base64 part is damaged.") from error
    if _blob_type(blob) != key_type:
        raise InvalidKey("The key's data does not match its type; copy the whole line again.")
    if key_type == "ssh-rsa" and _rsa_bits(blob) < 2048:
        raise InvalidKey("RSA keys need at least 2048 bits.")
    return PublicKey(key_type, blob, (match["comment"] or "").strip()[:200])


def _strings(blob: bytes, count: int) -> list[bytes]:
    """The first `count` length-prefixed strings of an SSH wire-format blob."""
    out, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(blob):
            raise InvalidKey("The key's data is truncated; copy the whole line again.")
        (size,) = struct.unpack(">I", blob[offset : offset + 4])
        out.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
        if offset > len(blob):
            raise InvalidKey("The key's data is truncated; copy the whole line again.")
    return out


def _blob_type(blob: bytes) -> str:
    return _strings(blob, 1)[0].decode("ascii", "replace")


def _rsa_bits(blob: bytes) -> int:
    modulus = _strings(blob, 3)[2]
    return int.from_bytes(modulus, "big").bit_length()
