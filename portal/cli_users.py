"""``onedata users``: accounts for operators at the console (create, set-role, disable, enable,
list).

Every change is made as :data:`portal.services.access.OPERATOR` through
:mod:`portal.services.users`, which writes the security log (``user:account:create``,
``authz:role:grant`` / ``authz:role:revoke``, ``user:account:disable``, ``user:account:enable``).
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal import db
from portal.cli_common import console, operator_transaction, with_app
from portal.models import Organization, Role, User
from portal.services import users as user_admin
from portal.services.access import OPERATOR
from portal.services.accounts import MIN_PASSWORD, get_user

ROLES = [r.value for r in Role if r is not Role.PUBLIC]


@click.group(help="User accounts: create, change roles, disable, enable, list.")
def users() -> None:
    pass


def _organizations(session: Session, names: tuple[str, ...]) -> list[Organization]:
    wanted = sorted({n.strip().lower() for n in names if n.strip()})
    found = list(session.scalars(select(Organization).where(Organization.name.in_(wanted))))
    missing = sorted(set(wanted) - {o.name for o in found})
    if missing:
        raise click.ClickException(
            f"unknown organization(s): {', '.join(missing)} (see the names in /organization)"
        )
    return found


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    return str(
        click.prompt(
            f"Password (at least {MIN_PASSWORD} characters)",
            hide_input=True,
            confirmation_prompt="Repeat the password",
        )
    )


@users.command("create", help="Create USERNAME with a role; asks for the password twice.")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default=Role.MEMBER.value, show_default=True)
@click.option("--org", "orgs", multiple=True, help="OPD name (repeat for several); producers.")
@click.option("--email", default=None, help="E-mail address, for password resets.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_app
def create(
    app: Flask,
    username: str,
    role: str,
    orgs: tuple[str, ...],
    email: str | None,
    password_stdin: bool,
) -> None:
    password = _read_password(password_stdin)
    with operator_transaction() as session:
        new = user_admin.create_user(
            session,
            OPERATOR,
            username=username,
            email=email,
            role=Role(role),
            organizations=_organizations(session, orgs),
            password=password,
        )
        name, chosen = new.user.username, new.user.role
    console.print(f"Created [bold]{name}[/bold] ({chosen.value}).")
    if chosen in (Role.STEWARD, Role.ADMIN):
        console.print("Two-step sign-in (TOTP) is mandatory: it is set up at the first sign-in.")


@users.command("set-role", help="Give USERNAME the role ROLE (and, for producers, their OPDs).")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--org", "orgs", multiple=True, help="OPD name (repeat for several).")
@with_app
def set_role(app: Flask, username: str, role: str, orgs: tuple[str, ...]) -> None:
    with operator_transaction() as session:
        user = get_user(session, username)
        organizations = _organizations(session, orgs)
        user_admin.change_role(session, OPERATOR, user, Role(role), organizations)
        names = ", ".join(o.name for o in organizations) or "no OPD"
    console.print(f"{username}: {role} ({names}). Their sessions have ended.")


@users.command("disable", help="Disable USERNAME: no sign-in, sessions end, tokens revoked.")
@click.argument("username")
@with_app
def disable(app: Flask, username: str) -> None:
    with operator_transaction() as session:
        user_admin.disable_user(session, OPERATOR, get_user(session, username))
    console.print(f"{username} is disabled.")


@users.command("enable", help="Enable USERNAME again; its revoked tokens stay revoked.")
@click.argument("username")
@with_app
def enable(app: Flask, username: str) -> None:
    with operator_transaction() as session:
        user_admin.enable_user(session, OPERATOR, get_user(session, username))
    console.print(f"{username} is enabled: they can sign in again (old API tokens stay revoked).")


@users.command("list", help="List the accounts.")
@with_app
def list_users(app: Flask) -> None:
    with db.transaction() as session:
        table = Table("username", "role", "OPD", "active", "2FA", "last sign-in")
        query = select(User).options(selectinload(User.organizations)).order_by(User.username)
        for user in session.scalars(query):
            table.add_row(
                user.username,
                user.role.value,
                ", ".join(o.name for o in user.organizations),
                "yes" if user.active else "no",
                "on" if user.totp_enabled else "off",
                user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "",
            )
        console.print(table)
