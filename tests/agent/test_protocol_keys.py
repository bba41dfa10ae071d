"""``protocol.keys``: what both sides derive from the shared secret."""

from __future__ import annotations

import os

import pytest
import zmq
from zmq.utils import z85

from debugbroker.protocol import keys


def test_z85_is_zeromq_s() -> None:
    for size in (4, 32, 64):
        raw = os.urandom(size)
        assert keys.z85_encode(raw) == z85.encode(raw).decode()
    with pytest.raises(ValueError):
        keys.z85_encode(b"abc")


def test_keys_are_curve_keys_bound_to_the_secret_and_their_role() -> None:
    server, client = keys.server_secret_key("s"), keys.client_secret_key("s")
    assert len(server) == len(client) == 40 and server != client
    assert keys.server_secret_key("s") == server  # deterministic: restarts keep the keys
    assert keys.server_secret_key("t") != server
    # libzmq takes them: the public halves follow, and a handshake works with them.
    context = zmq.Context()
    try:
        router = context.socket(zmq.ROUTER)
        router.curve_server = True
        router.curve_secretkey = server.encode()
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer = context.socket(zmq.DEALER)
        dealer.curve_serverkey = zmq.curve_public(server.encode())
        dealer.curve_publickey = zmq.curve_public(client.encode())
        dealer.curve_secretkey = client.encode()
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send(b"over curve")
        assert router.poll(10_000) and router.recv_multipart()[-1] == b"over curve"
        for sock in (router, dealer):
            sock.close(0)
    finally:
        context.term()


def test_proofs_bind_the_agent_the_nonce_and_the_url() -> None:
    proof = keys.hello_proof("s", "agent", "nonce")
    assert len(proof) == 64
    assert keys.proof_matches(proof, keys.hello_proof("s", "agent", "nonce"))
    for other in (
        keys.hello_proof("t", "agent", "nonce"),
        keys.hello_proof("s", "agent2", "nonce"),
        keys.hello_proof("s", "agent", "nonce2"),
        keys.welcome_proof("s", "agent", "nonce", ""),  # a hello's proof is no welcome's
    ):
        assert not keys.proof_matches(proof, other)
    welcome = keys.welcome_proof("s", "agent", "nonce", "http://a")
    assert welcome != keys.welcome_proof("s", "agent", "nonce", "http://b")
    assert not keys.proof_matches(welcome, "")
    assert not keys.proof_matches(welcome, "\udcff" * 64)  # a hostile string: no error
