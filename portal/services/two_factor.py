"""TOTP second factor: enrolment, codes (each accepted once), recovery codes, failure limits.

The TOTP secret has to be kept as it is (the server computes the expected codes from it); it
lives in ``user.totp_secret``. Recovery codes are kept only as argon2 hashes and removed once used.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from portal.errors import Invalid
from portal.models import User, utcnow
from portal.services.accounts import LOCKOUT
from portal.services.throttle import Limit, Throttle

__all__ = [
    "FAILURES",
    "ISSUER",
    "RECOVERY_CODES",
    "Check",
    "check_code",
    "confirm_enrolment",
    "disable",
    "new_recovery_codes",
    "provisioning_uri",
    "start_enrolment",
]

ISSUER = "Satu Data Pontianak"
RECOVERY_CODES = 10
#: Wrong second-factor codes per account before it is locked like after wrong passwords. A
#: counter of its own: a correct password resets ``failed_logins``, which would otherwise let
#: whoever knows the password try codes for ever.
FAILURES = Limit("2fa", 5, LOCKOUT)
#: TOTP steps already used per account, so a code observed on its way cannot be replayed.
USED_STEPS = Limit("totp-step", 1, timedelta(minutes=3))
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt
#: Recovery codes carry about 59 random bits, so argon2's lighter OWASP profile is enough.
_CODE_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_STEP = 30


def start_enrolment(session: Session, user: User) -> str:
    """Give ``user`` a new, not yet enabled TOTP secret (or keep the pending one); return it.

    :param session: the unit of work.
    :param user: who enrols; an enabled second factor is left alone.
    :raises Invalid: when ``user`` already has TOTP enabled.
    """
    if user.totp_enabled:
        raise Invalid("two-factor authentication is already on")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        session.flush()
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code.

    :raises Invalid: when the user has no TOTP secret.
    """
    if not user.totp_secret:
        raise Invalid("no two-factor enrolment in progress")
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step (±1, for clock drift) whose code is ``code``."""
    totp = pyotp.TOTP(secret)
    current = int(now) // _STEP
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _totp_ok(throttle: Throttle, user: User, code: str) -> bool:
    if not user.totp_secret or not (len(code) == 6 and code.isdigit()):
        return False
    step = _matching_step(user.totp_secret, code, time.time())
    if step is None:
        return False
    marker = f"{user.id}:{step}"
    if throttle.seen(USED_STEPS, marker):
        return False
    throttle.hit(USED_STEPS, marker)
    return True


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _use_recovery_code(session: Session, user: User, code: str) -> bool:
    wanted = _normalise(code)
    if len(wanted) != 12:
        return False
    for stored in user.recovery_codes:
        try:
            if _CODE_HASHER.verify(stored, wanted):
                # a new list: JSON columns do not notice changes made in place
                user.recovery_codes = [h for h in user.recovery_codes if h != stored]
                session.flush()
                return True
        except (VerificationError, InvalidHashError):
            continue
    return False


@dataclass(frozen=True)
class Check:
    """The outcome of a second-factor code."""

    ok: bool
    #: ``totp`` or ``recovery_code`` when accepted.
    method: str | None = None
    #: True when this failure locked the account.
    locked: bool = False


def check_code(session: Session, throttle: Throttle, user: User, code: str) -> Check:
    """Check a TOTP code or a recovery code of a user whose TOTP is on.

    A failure counts toward :data:`FAILURES`; reaching it locks the account for
    :data:`portal.services.accounts.LOCKOUT`. A used recovery code is removed.

    :param session: the unit of work (the caller commits even on failure).
    :param throttle: where failures and used steps are counted.
    :param user: the account, identified by its password just before.
    :param code: what the person typed.
    """
    code = code.strip().replace(" ", "")
    if user.totp_enabled and _totp_ok(throttle, user, code):
        return Check(True, "totp")
    if user.totp_enabled and _use_recovery_code(session, user, code):
        return Check(True, "recovery_code")
    failures = throttle.hit(FAILURES, str(user.id))
    if failures >= FAILURES.max_hits:
        user.locked_until = utcnow() + LOCKOUT
        session.flush()
        return Check(False, locked=True)
    return Check(False)


def confirm_enrolment(session: Session, throttle: Throttle, user: User, code: str) -> list[str]:
    """Turn TOTP on once the person proves their app shows the right code.

    :param session: the unit of work.
    :param throttle: where the used step is recorded.
    :param user: who enrols, with a pending secret from :func:`start_enrolment`.
    :param code: the six digits their app shows.
    :returns: the new recovery codes, to be shown once.
    :raises Invalid: when the code is wrong or no enrolment is pending.
    """
    if user.totp_enabled or not user.totp_secret:
        raise Invalid("no two-factor enrolment in progress")
    if not _totp_ok(throttle, user, code.strip().replace(" ", "")):
        raise Invalid("wrong code", [{"field": "code", "code": "wrong", "message": "wrong code"}])
    user.totp_enabled = True
    return new_recovery_codes(session, user)


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Replace ``user``'s recovery codes; return them in clear (the only time they exist so).

    :param session: the unit of work.
    :param user: whose codes are replaced.
    """
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(12)) for _ in range(RECOVERY_CODES)]
    user.recovery_codes = [_CODE_HASHER.hash(code) for code in codes]
    session.flush()
    return [f"{c[:4]}-{c[4:8]}-{c[8:]}" for c in codes]


def disable(session: Session, user: User) -> None:
    """Turn TOTP off and forget the secret and recovery codes.

    :raises Invalid: when the user's role requires a second factor.
    """
    if user.needs_two_factor:
        raise Invalid("two-factor authentication is mandatory for stewards and admins")
    user.totp_enabled = False
    user.totp_secret = None
    user.recovery_codes = []
    user.session_version += 1
    session.flush()
