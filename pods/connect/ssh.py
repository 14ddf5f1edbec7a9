"""OpenSSH public keys: parse and check one `authorized_keys` line."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

# Key type -> how many length-prefixed strings its blob holds (type name included).
KEY_TYPES = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
}
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
    if "PRIVATE KEY" in text:
        raise InvalidKey("That is a private key. Paste the .pub file; keep the private key.")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise InvalidKey("Paste exactly one public key (one line, from your .pub file).")
    match = LINE.match(lines[0])
    if not match:
        raise InvalidKey("That is not an OpenSSH public key: expected “type base64 comment”.")
    key_type = match["type"]
    if key_type not in KEY_TYPES:
        raise InvalidKey(f"Unsupported key type. Use one of: {', '.join(list(KEY_TYPES)[:5])}.")
    try:
        blob = base64.b64decode(match["blob"], validate=True)
    except binascii.Error as error:
        raise InvalidKey("The key's base64 part is damaged.") from error
    if not blob.startswith(struct.pack(">I", len(key_type)) + key_type.encode()):
        raise InvalidKey("The key's data does not match its type; copy the whole line again.")
    parts = _strings(blob, KEY_TYPES[key_type])
    if key_type == "ssh-ed25519" and len(parts[1]) != 32:
        raise InvalidKey("The key's data is truncated; copy the whole line again.")
    if key_type == "ssh-rsa" and int.from_bytes(parts[2], "big").bit_length() < 2048:
        raise InvalidKey("RSA keys need at least 2048 bits.")
    return PublicKey(key_type, blob, (match["comment"] or "").strip()[:200])


def _strings(blob: bytes, count: int) -> list[bytes]:
    """The `count` length-prefixed strings an SSH wire-format key blob consists of, exactly."""
    out, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(blob):
            break
        (size,) = struct.unpack(">I", blob[offset : offset + 4])
        out.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if len(out) != count or offset != len(blob):
        raise InvalidKey("The key's data is truncated; copy the whole line again.")
    return out
