"""NATS decentralized auth for the tests: an operator, its accounts and their users as NKeys,
their JWTs signed here (the claims nats-server 2.x reads: JWT v2, ``ed25519-nkey``), the
server config block (``operator``, ``resolver: MEMORY``, ``resolver_preload``) and ``.creds``
files as ``nsc`` writes them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import time
from typing import Any

import nkeys

UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}
JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Entity:
    """One NKey pair (operator, account or user): ``seed`` and ``public`` (str)."""

    def __init__(self, prefix: int) -> None:
        self.seed = nkeys.encode_seed(os.urandom(32), prefix)
        self.keys = nkeys.from_seed(bytearray(self.seed))
        self.public = self.keys.public_key.decode()


def operator() -> Entity:
    return Entity(nkeys.PREFIX_BYTE_OPERATOR)


def account() -> Entity:
    return Entity(nkeys.PREFIX_BYTE_ACCOUNT)


def user() -> Entity:
    return Entity(nkeys.PREFIX_BYTE_USER)


def sign_jwt(issuer: Entity, subject: Entity, name: str, nats: dict[str, Any]) -> str:
    """A JWT for ``subject`` signed by ``issuer``; ``nats`` the type-specific claims."""
    claims: dict[str, Any] = {"jti": "", "iat": int(time.time()), "iss": issuer.public,
                              "name": name, "sub": subject.public,
                              "nats": {**nats, "version": 2}}
    digest = hashlib.new("sha512_256", json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = issuer.keys.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64(signature)}"


def account_jwt(op: Entity, acc: Entity, name: str, jetstream: bool = True) -> str:
    limits = {**UNLIMITED, **(JETSTREAM if jetstream else {})}
    return sign_jwt(op, acc, name, {"type": "account", "limits": limits,
                                    "default_permissions": {"pub": {}, "sub": {}}})


def user_jwt(acc: Entity, usr: Entity, name: str) -> str:
    return sign_jwt(acc, usr, name, {"type": "user", "pub": {}, "sub": {}, "subs": -1,
                                     "data": -1, "payload": -1})


def creds_file(path: pathlib.Path, jwt: str, usr: Entity) -> pathlib.Path:
    """A ``.creds`` file (the user's JWT and NKey seed) as ``nsc`` writes it."""
    path.write_text(
        "-----BEGIN NATS USER JWT-----\n" f"{jwt}\n" "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n" f"{usr.seed.decode()}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n")
    return path


class Operator:
    """An operator with a system account and one JetStream-enabled account ``app``;
    :meth:`creds` writes a ``.creds`` file for a new user of ``app``; :attr:`conf` is the
    server config block that trusts them (accounts preloaded in a MEMORY resolver)."""

    def __init__(self, name: str = "test-op") -> None:
        self.op = operator()
        self.system = account()
        self.app = account()
        self.jwt = sign_jwt(self.op, self.op, name,
                            {"type": "operator", "system_account": self.system.public})
        self.accounts = {self.system.public: account_jwt(self.op, self.system, "SYS", False),
                         self.app.public: account_jwt(self.op, self.app, "app")}

    @property
    def conf(self) -> str:
        preload = ", ".join(f'{pub}: "{jwt}"' for pub, jwt in self.accounts.items())
        return (f'operator: "{self.jwt}"\nsystem_account: {self.system.public}\n'
                f"resolver: MEMORY\nresolver_preload: {{ {preload} }}\n")

    def creds(self, path: pathlib.Path, name: str = "agent",
              acc: Entity | None = None) -> tuple[pathlib.Path, Entity]:
        """A ``.creds`` file for a new user of ``acc`` (default: ``app``) signed by ``acc``."""
        acc = acc or self.app
        usr = user()
        return creds_file(path, user_jwt(acc, usr, name), usr), usr
