"""Registration, forgotten passwords and the own-account page (password, two-factor).

Routes of the ``auth`` blueprint (:mod:`portal.views.auth`); this module only adds views to it.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask import session as browser_session
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from portal import identity
from portal.db import get_session
from portal.errors import Conflict, Invalid
from portal.mail import send_mail_later
from portal.models import Role, User
from portal.services import accounts, password_reset, two_factor
from portal.services.events import EventTag, record_event
from portal.services.signin import registration_conflicts
from portal.views.auth import (
    bp,
    browser_user,
    count_attempt,
    enrol_page,
    finish_sign_in,
    info,
    throttle,
    to_login,
    too_many,
)
from portal.views.auth_forms import (
    ButtonForm,
    ChangePasswordForm,
    CodeForm,
    ForgotForm,
    PasswordCheckForm,
    RegisterForm,
    ResetForm,
)

Page = BaseResponse | tuple[str, int]


@bp.route("/register", methods=["GET", "POST"])
def register() -> Page:
    if browser_user() is not None:
        return redirect(url_for("auth.account"))
    form = RegisterForm()
    if request.method == "POST":
        refused = too_many("register")
        if refused is not None:
            return refused
    if form.validate_on_submit():
        db = get_session()
        taken = registration_conflicts(db, form.username.data, form.email.data)
        if "username" in taken:
            form.username.errors.append(_("This username is taken. Choose another one."))
        if "email" in taken:
            form.email.errors.append(
                _("An account with this e-mail address exists. Forgot your password?")
            )
        if not taken:
            try:
                user = accounts.create_user(
                    db,
                    username=form.username.data,
                    password=form.password.data,
                    email=form.email.data,
                    role=Role.MEMBER,
                )
            except (Invalid, Conflict):  # a race with another registration
                form.username.errors.append(_("This username is taken. Choose another one."))
            else:
                count_attempt("register")
                record_event(
                    db,
                    EventTag.USER_ACCOUNT_CREATE,
                    actor=accounts.actor_for(db, user),
                    target=user,
                    details={"role": Role.MEMBER.value, "by": "self"},
                    request=info(),
                )
                finish_sign_in(user, None, None)
                flash(_("Welcome! Your account is ready."))
                return redirect(url_for("auth.account"))
        else:
            count_attempt("register")  # probing for taken names counts as well
    return render_template("auth/register.html", form=form), 200


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> Page:
    form = ForgotForm()
    if request.method == "POST":
        refused = too_many("forgot")
        if refused is not None:
            return refused
    if form.validate_on_submit():
        count_attempt("forgot")
        db = get_session()
        issued = password_reset.request_reset(db, form.email.data)
        if issued is not None and issued.user.email:
            link = _external(url_for("auth.reset_password", token=issued.token))
            body = _(
                "Hello %(name)s,\n\nsomeone (probably you) asked to reset the password of your "
                "account at Satu Data Kota Pontianak. Open this link within one hour to choose "
                "a new password:\n\n%(link)s\n\nThe link works once. If you did not ask for "
                "this, ignore this e-mail: your password stays as it is.\n",
                name=issued.user.display_name or issued.user.username,
                link=link,
            )
            subject = _("Reset your password · Satu Data Kota Pontianak")
            send_mail_later(current_app._get_current_object(), issued.user.email, subject, body)  # type: ignore[attr-defined]
        record_event(
            db,
            EventTag.AUTH_PASSWORD_RESET,
            target=issued.user if issued else None,
            details={"step": "requested", "account_found": issued is not None},
            request=info(),
        )
        return render_template("auth/forgot_sent.html"), 200
    return render_template("auth/forgot.html", form=form), 200


def _external(path: str) -> str:
    # A configured public address, so a forged Host header cannot redirect reset links.
    base = current_app.config.get("BASE_URL") or request.host_url
    return str(base).rstrip("/") + path


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Page:
    masked = url_for("auth.reset_password", token="-")  # noqa: S106 - keeps the token out of the log
    db = get_session()
    try:
        password_reset.find_reset(db, token)
    except Invalid:
        return render_template("auth/reset_invalid.html"), 400
    form = ResetForm()
    if form.validate_on_submit():
        try:
            user = password_reset.complete_reset(db, token, form.password.data)
        except Invalid:
            return render_template("auth/reset_invalid.html"), 400
        record_event(
            db,
            EventTag.AUTH_PASSWORD_RESET,
            target=user,
            details={"step": "done"},
            request=info(path=masked),
        )
        identity.logout()
        flash(_("Your password was changed. Sign in with the new password."))
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form, token=token), 200


# --- the own-account page --------------------------------------------------------------------


def _account_page(user: User, status: int = 200, **forms: object) -> tuple[str, int]:
    defaults: dict[str, object] = {
        "password_form": ChangePasswordForm(formdata=None),
        "disable_form": PasswordCheckForm(formdata=None),
        "recovery_form": CodeForm(formdata=None),
        "button": ButtonForm(formdata=None),
    }
    defaults.update(forms)
    return render_template("auth/account.html", account=user, **defaults), status


@bp.get("/account")
def account() -> Page:
    user = browser_user()
    if user is None:
        return to_login()
    return _account_page(user)


@bp.post("/account/password")
def change_password() -> Page:
    user = browser_user()
    if user is None:
        return to_login()
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(user, 400, password_form=form)
    refused = too_many("login")
    if refused is not None:
        return refused
    db = get_session()
    if not accounts.verify_password(user.password_hash, form.current.data):
        count_attempt("login")
        record_event(
            db,
            EventTag.AUTH_LOGIN_FAILURE,
            actor=identity.current_actor(),
            target=user,
            details={"reason": "password", "stage": "password_change"},
            request=info(),
        )
        form.current.errors.append(_("The current password is wrong."))
        return _account_page(user, 400, password_form=form)
    two_factor_done = bool(browser_session.get(identity.SESSION_2FA))
    accounts.set_password(db, user, form.password.data)  # ends every other session
    record_event(
        db,
        EventTag.AUTH_PASSWORD_RESET,
        actor=identity.current_actor(),
        target=user,
        details={"step": "changed"},
        request=info(),
    )
    identity.login(user, two_factor_done=two_factor_done)
    flash(_("Your password was changed. Your other sessions have ended."))
    return redirect(url_for("auth.account"))


@bp.post("/account/2fa/start")
def totp_start() -> Page:
    user = browser_user()
    if user is None:
        return to_login()
    ButtonForm()
    if not user.totp_enabled:
        two_factor.start_enrolment(get_session(), user)
    return redirect(url_for("auth.totp_setup"))


@bp.route("/account/2fa", methods=["GET", "POST"])
def totp_setup() -> Page:
    user = browser_user()
    if user is None:
        return to_login()
    if user.totp_enabled or not user.totp_secret:
        return redirect(url_for("auth.account"))
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        db = get_session()
        try:
            codes = two_factor.confirm_enrolment(db, throttle(), user, form.code.data)
        except Invalid:
            error = _("Wrong code. Check the time on your phone and type the current code.")
        else:
            record_event(
                db,
                EventTag.AUTH_2FA_SUCCESS,
                actor=identity.current_actor(),
                target=user,
                details={"method": "totp", "step": "enrolled"},
                request=info(),
            )
            identity.login(user, two_factor_done=True)
            page = render_template(
                "auth/recovery_codes.html", codes=codes, next=url_for("auth.account")
            )
            return page, 200
    return enrol_page(form, error, user, action=url_for("auth.totp_setup"), mandatory=False)


@bp.post("/account/2fa/disable")
def totp_disable() -> Page:
    user = browser_user()
    if user is None:
        return to_login()
    form = PasswordCheckForm()
    if not form.validate_on_submit():
        return _account_page(user, 400, disable_form=form)
    if not accounts.verify_password(user.password_hash, form.current.data):
        form.current.errors.append(_("The current password is wrong."))
        return _account_page(user, 400, disable_form=form)
    db = get_session()
    try:
        two_factor.disable(db, user)
    except Invalid:
        form.current.errors.append(_("Two-step sign-in is mandatory for stewards and admins."))
        return _account_page(user, 400, disable_form=form)
    record_event(
        db,
        EventTag.AUTH_2FA_SUCCESS,
        actor=identity.current_actor(),
        target=user,
        details={"step": "disabled"},
        request=info(),
    )
    identity.login(user, two_factor_done=False)
    flash(_("Two-step sign-in is off."))
    return redirect(url_for("auth.account"))


@bp.post("/account/2fa/recovery")
def recovery_codes() -> Page:
    user = browser_user()
    if user is None:
        return to_login()
    form = CodeForm()
    if not user.totp_enabled or not form.validate_on_submit():
        return _account_page(user, 400, recovery_form=form)
    db = get_session()
    check = two_factor.check_code(db, throttle(), user, form.code.data)
    if not check.ok:
        form.code.errors.append(_("Wrong or already used code."))
        return _account_page(user, 400, recovery_form=form)
    codes = two_factor.new_recovery_codes(db, user)
    record_event(
        db,
        EventTag.AUTH_2FA_SUCCESS,
        actor=identity.current_actor(),
        target=user,
        details={"method": check.method, "step": "recovery_codes_renewed"},
        request=info(),
    )
    page = render_template("auth/recovery_codes.html", codes=codes, next=url_for("auth.account"))
    return page, 200
