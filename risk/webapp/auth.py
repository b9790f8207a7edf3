"""Signing in to the web page: a one-time link (15 minutes) exchanged at once for a server-side session
(a working day). The browser holds only the session's random token; the database only its hash, so a
leaked database opens no session. A revoked client's sessions stop at its next request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from risk.auth.models import ApiClient
from risk.webapp.models import WebLoginToken, WebSession

LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=10)
COOKIE = "presign_app"
LOGIN_PATH = "/app/login/"
# Who the page serves; other roles use the API.
WEB_ROLES = frozenset({"agent", "reviewer"})


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    client: ApiClient
    csrf_token: str
    token_hash: str


def issue_login_token(session: Session, client: ApiClient, now: datetime) -> str:
    """A new one-time sign-in token for `client` (shown once, as part of a link); flushes."""
    if client.role not in WEB_ROLES:
        raise ValueError(f"the web page signs in agents and reviewers, not a {client.role}")
    token = secrets.token_urlsafe(32)
    session.add(WebLoginToken(token_hash=_hash(token), client_id=client.id, created_at=now,
                              expires_at=now + LINK_LIFETIME))  # fmt: skip
    session.flush()
    return token


def login_link(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + LOGIN_PATH + token


def exchange(session: Session, token: str, now: datetime) -> str | None:
    """Spend a one-time token on a new session; the session's cookie token, or None when the link is
    unknown, used, expired or its client revoked. The conditional update spends it once under races."""
    if not token or len(token) > 100:
        return None
    spent = session.execute(
        update(WebLoginToken)
        .where(WebLoginToken.token_hash == _hash(token), WebLoginToken.used_at.is_(None),
               WebLoginToken.expires_at > now)
        .values(used_at=now)
        .returning(WebLoginToken.client_id)
    ).first()  # fmt: skip
    if spent is None:
        return None
    client = session.get(ApiClient, spent.client_id)
    if client is None or client.revoked_at is not None or client.role not in WEB_ROLES:
        return None
    # Spent links and ended sessions of this client are of no further use: keep the tables small.
    session.execute(delete(WebLoginToken).where(WebLoginToken.client_id == client.id, WebLoginToken.expires_at <= now))
    over = or_(WebSession.expires_at <= now, WebSession.ended_at.is_not(None))
    session.execute(delete(WebSession).where(WebSession.client_id == client.id, over))
    cookie = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_hash(cookie), client_id=client.id, csrf_token=secrets.token_urlsafe(32),
                           created_at=now, expires_at=now + SESSION_LIFETIME))  # fmt: skip
    session.flush()
    return cookie


def signed_in(session: Session, cookie: str | None, now: datetime) -> SignedIn | None:
    """The live session behind a cookie: not ended, not expired, its client not revoked."""
    if not cookie or len(cookie) > 100:
        return None
    row = session.execute(
        select(WebSession, ApiClient)
        .join(ApiClient, ApiClient.id == WebSession.client_id)
        .where(WebSession.token_hash == _hash(cookie), WebSession.ended_at.is_(None), WebSession.expires_at > now,
               ApiClient.revoked_at.is_(None))
    ).first()  # fmt: skip
    if row is None:
        return None
    web, client = row
    return SignedIn(client=client, csrf_token=web.csrf_token, token_hash=web.token_hash)


def csrf_ok(user: SignedIn, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(user.csrf_token, sent or "")


def sign_out(session: Session, user: SignedIn, now: datetime) -> None:
    session.execute(update(WebSession).where(WebSession.token_hash == user.token_hash).values(ended_at=now))
