"""Users, login sessions and API keys.

Passwords are hashed with scrypt from hashlib (salted, memory-hard; no extra dependency). Session tokens and
API key secrets are random; only their sha256 is stored, so a copy of the database logs nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from chatforge.store.base import Conflict, NotFound, StoreBase, StoreError, choice, iso
from chatforge.store.models import ApiKey, LoginSession, User

ROLES = ("user", "rater", "admin")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # OWASP's minimum for scrypt; ~50 ms and 16 MiB per hash
SESSION_DAYS = 30


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT["n"], r: int = SCRYPT["r"],
                  p: int = SCRYPT["p"]) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    _, n, r, p, salt, _digest = stored.split("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt), int(n), int(r), int(p)), stored)


DUMMY_HASH = hash_password("not a password")  # checked for unknown names, so their replies take as long


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def user_dict(u: User) -> dict:
    return {"id": u.id, "name": u.name, "role": u.role, "created": iso(u.created)}


def key_dict(k: ApiKey) -> dict:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "user_id": k.user_id, "created": iso(k.created),
            "revoked": iso(k.revoked), "last_used": iso(k.last_used)}


class UsersMixin(StoreBase):
    # --- users ---

    def create_user(self, name: str, password: str, role: str = "user") -> dict:
        name = (name or "").strip()
        if not name or len(name) > 64:
            raise StoreError("a user name needs 1 to 64 characters")
        if not password:
            raise StoreError("the password must not be empty")
        choice(role, ROLES, "role")
        try:
            with self.write() as s:
                u = User(name=name, password_hash=hash_password(password), role=role)
                s.add(u)
                s.flush()
                return user_dict(u)
        except IntegrityError:
            raise Conflict(f"the user name '{name}' is taken") from None

    def authenticate(self, name: str, password: str) -> dict | None:
        with self.read() as s:
            u = s.scalar(select(User).where(User.name == (name or "").strip()))
        if u is None:
            check_password(password or "", DUMMY_HASH)
            return None
        return user_dict(u) if check_password(password or "", u.password_hash) else None

    def get_user(self, user_id: int) -> dict | None:
        with self.read() as s:
            u = s.get(User, user_id)
            return user_dict(u) if u else None

    def get_user_by_name(self, name: str) -> dict | None:
        with self.read() as s:
            u = s.scalar(select(User).where(User.name == (name or "").strip()))
            return user_dict(u) if u else None

    def list_users(self) -> list[dict]:
        with self.read() as s:
            return [user_dict(u) for u in s.scalars(select(User).order_by(User.id))]

    def set_role(self, name: str, role: str) -> dict:
        choice(role, ROLES, "role")
        with self.write() as s:
            u = s.scalar(select(User).where(User.name == name))
            if u is None:
                raise NotFound(f"no user named '{name}'")
            u.role = role
            return user_dict(u)

    def set_password(self, user_id: int, password: str) -> None:
        if not password:
            raise StoreError("the password must not be empty")
        with self.write() as s:
            u = s.get(User, user_id)
            if u is None:
                raise NotFound(f"no user {user_id}")
            u.password_hash = hash_password(password)

    # --- login sessions (the cf_session cookie) ---

    def create_session(self, user_id: int, days: int = SESSION_DAYS) -> str:
        token = secrets.token_urlsafe(32)
        with self.write() as s:
            if s.get(User, user_id) is None:
                raise NotFound(f"no user {user_id}")
            s.add(LoginSession(token_hash=sha256(token), user_id=user_id, expires=self.now() + timedelta(days=days)))
        return token

    def session_user(self, token: str | None) -> dict | None:
        if not token:
            return None
        with self.read() as s:
            row = s.execute(select(User, LoginSession.expires).join(LoginSession, LoginSession.user_id == User.id)
                            .where(LoginSession.token_hash == sha256(token))).first()
            return user_dict(row[0]) if row and row[1] > self.now() else None

    def delete_session(self, token: str | None) -> None:
        if token:
            with self.write() as s:
                s.execute(LoginSession.__table__.delete().where(LoginSession.token_hash == sha256(token)))

    # --- API keys ---

    def create_key(self, name: str, user_id: int | None = None) -> tuple[dict, str]:
        """A new key and its secret "cf-…": the secret is returned this once and never stored."""
        name = (name or "").strip()
        if not name or len(name) > 64:
            raise StoreError("a key name needs 1 to 64 characters")
        secret = "cf-" + secrets.token_urlsafe(32)
        try:
            with self.write() as s:
                k = ApiKey(name=name, prefix=secret[:7], secret_hash=sha256(secret), user_id=user_id)
                s.add(k)
                s.flush()
                return key_dict(k), secret
        except IntegrityError:
            raise Conflict(f"an API key named '{name}' exists") from None

    def list_keys(self) -> list[dict]:
        with self.read() as s:
            return [key_dict(k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]

    def revoke_key(self, key: int | str) -> dict:
        with self.write() as s:
            k = s.get(ApiKey, key) if isinstance(key, int) else s.scalar(select(ApiKey).where(ApiKey.name == key))
            if k is None and isinstance(key, str) and key.isdigit():
                k = s.get(ApiKey, int(key))
            if k is None:
                raise NotFound(f"no API key {key!r}")
            k.revoked = k.revoked or self.now()
            return key_dict(k)

    def key_for_secret(self, secret: str | None) -> dict | None:
        if not secret or not secret.startswith("cf-"):
            return None
        with self.read() as s:
            k = s.scalar(select(ApiKey).where(ApiKey.secret_hash == sha256(secret), ApiKey.revoked.is_(None)))
            if k is None:
                return None
            stale = k.last_used is None or self.now() - k.last_used > timedelta(minutes=1)
        if stale:  # at most one write a minute per key, not one per request
            with self.write() as s:
                s.get(ApiKey, k.id).last_used = self.now()
        return key_dict(k)

    def has_keys(self) -> bool:
        with self.read() as s:
            return bool(s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked.is_(None))))
