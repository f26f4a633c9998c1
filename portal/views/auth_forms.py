"""The sign-in and account forms. Every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from portal.services.accounts import MIN_PASSWORD, USERNAME

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _new_password(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            DataRequired(message=_l("Choose a password.")),
            Length(
                min=MIN_PASSWORD,
                max=200,
                message=_l("The password must have at least %(n)d characters.", n=MIN_PASSWORD),
            ),
        ],
    )


def _confirm() -> PasswordField:
    return PasswordField(
        _l("Password again"),
        validators=[
            DataRequired(message=_l("Type the password a second time.")),
            EqualTo("password", message=_l("The two passwords are not the same.")),
        ],
    )


class _Form(FlaskForm):  # type: ignore[misc]  # flask_wtf ships no type information
    """The base of the forms here."""


class LoginForm(_Form):
    username = StringField(
        _l("Username"),
        validators=[DataRequired(message=_l("Enter your username.")), Length(max=80)],
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(message=_l("Enter your password.")), Length(max=200)],
    )


class CodeForm(_Form):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(message=_l("Enter the code.")), Length(max=32)],
    )


class RegisterForm(_Form):
    username = StringField(
        _l("Username"),
        validators=[
            DataRequired(message=_l("Choose a username.")),
            Regexp(
                USERNAME.pattern,
                message=_l(
                    "3 to 80 lower-case letters, digits, dots, hyphens or underscores, "
                    "starting with a letter or digit."
                ),
            ),
        ],
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
    )
    email = EmailField(
        _l("E-mail address"),
        validators=[
            DataRequired(message=_l("Enter your e-mail address.")),
            Length(max=254, message=_l("This e-mail address is too long.")),
            Regexp(EMAIL, message=_l("This is not a valid e-mail address.")),
        ],
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
    )
    password = _new_password(_l("Password"))
    confirm = _confirm()


class ForgotForm(_Form):
    email = EmailField(
        _l("E-mail address"),
        validators=[
            DataRequired(message=_l("Enter your e-mail address.")),
            Length(max=254, message=_l("This e-mail address is too long.")),
        ],
    )


class ResetForm(_Form):
    password = _new_password(_l("New password"))
    confirm = _confirm()


class ChangePasswordForm(_Form):
    current = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password.")), Length(max=200)],
    )
    password = _new_password(_l("New password"))
    confirm = _confirm()


class PasswordCheckForm(_Form):
    """Confirms a sensitive change (turning two-factor off) with the current password."""

    current = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password.")), Length(max=200)],
    )


class ButtonForm(_Form):
    """A form that is only a button (log out, start enrolment): the CSRF token is its content."""
