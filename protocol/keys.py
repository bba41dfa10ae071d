"""What ties the agent link to the shared secret (``DEBUGBROKER_SECRET``), on both sides.

Agents and the broker derive the same values from the secret, so the secret itself never
crosses the wire:

- the broker's CurveZMQ key pair: only a holder of the secret can complete the handshake
  as the server, so an agent knows it talks to the real broker before it sends anything;
- the agents' CurveZMQ client key pair: the broker's ZAP handler admits only that public
  key, so only a holder of the secret gets a message through to the broker;
- the proofs in a hello and its welcome, HMACs bound to the agent id and a fresh nonce
  (and the welcome's dashboard URL), which the other side checks before it trusts the peer.

Every value is an HMAC-SHA256 of a distinct label under the secret. A 32-byte seed is a
Curve25519 secret key as it is (the scalar is clamped when used); ``z85_encode`` writes it
as ZeroMQ's socket options take it. Stdlib only: importing this loads no zmq.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "server_secret_key",
    "client_secret_key",
    "hello_proof",
    "welcome_proof",
    "proof_matches",
    "z85_encode",
]

_LABEL = b"debugbroker agent link v2: "
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def _derive(secret: str, label: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _LABEL + label.encode(), hashlib.sha256).digest()


def z85_encode(raw: bytes) -> str:
    """``raw`` (a multiple of 4 bytes) in Z85 (ZeroMQ RFC 32), as CurveZMQ keys are written."""
    if len(raw) % 4:
        raise ValueError("Z85 encodes a multiple of 4 bytes")
    chars: list[str] = []
    for start in range(0, len(raw), 4):
        value = int.from_bytes(raw[start : start + 4], "big")
        block = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            block.append(_Z85[digit])
        chars.extend(reversed(block))
    return "".join(chars)


def server_secret_key(secret: str) -> str:
    """The broker's CurveZMQ secret key (Z85), derived from the shared secret."""
    return z85_encode(_derive(secret, "curve server key"))


def client_secret_key(secret: str) -> str:
    """The agents' CurveZMQ secret key (Z85), derived from the shared secret."""
    return z85_encode(_derive(secret, "curve client key"))


def hello_proof(secret: str, agent_id: str, nonce: str) -> str:
    """What a hello carries instead of the secret: an HMAC of its agent id and nonce."""
    message = f"hello\0{agent_id}\0{nonce}".encode()
    return hmac.new(_derive(secret, "hello proof"), message, hashlib.sha256).hexdigest()


def welcome_proof(secret: str, agent_id: str, nonce: str, dashboard_url: str) -> str:
    """What a welcome carries: an HMAC of the hello's agent id and nonce and the dashboard URL."""
    message = f"welcome\0{agent_id}\0{nonce}\0{dashboard_url}".encode()
    return hmac.new(_derive(secret, "welcome proof"), message, hashlib.sha256).hexdigest()


def proof_matches(expected: str, given: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
