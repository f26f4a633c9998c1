"""``onedata oauth``: OAuth 2 clients for operators at the console (register, list, revoke).

Every change is made as :data:`portal.services.access.OPERATOR` through
:mod:`portal.services.oauth_clients`, which writes the security log
(``auth:oauth_client:create``, ``auth:oauth_client:revoke``). A new client's secret is printed
once and never stored; only its hash is.
"""

from __future__ import annotations

import click
from flask import Flask
from rich.markup import escape
from rich.table import Table

from portal import db
from portal.cli_common import console, operator_transaction, with_app
from portal.models.oauth import ClientAuthMethod, GrantType
from portal.services import oauth_clients
from portal.services.access import OPERATOR, Scope


@click.group(help="OAuth 2 clients: register, list, revoke.")
def oauth() -> None:
    pass


@oauth.command("register", help="Register a client; prints its id and (confidential) secret once.")
@click.option("--name", required=True, help="Shown to users when they are asked to consent.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Where codes go (repeat for several); https, or http on 127.0.0.1.",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    required=True,
    type=click.Choice([g.value for g in GrantType]),
    help="Repeat for several.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice([s.value for s in Scope]),
    help="Repeat for several.",
)
@click.option("--public", is_flag=True, help="A public client: no secret, PKCE only.")
@click.option("--owner", default=None, help="Username of the person responsible for it.")
@click.option("--may-introspect", is_flag=True, help="A resource server that may introspect.")
@with_app
def register(
    app: Flask,
    name: str,
    redirect_uris: tuple[str, ...],
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    public: bool,
    owner: str | None,
    may_introspect: bool,
) -> None:
    with operator_transaction() as session:
        registered = oauth_clients.register_client(
            session,
            OPERATOR,
            name=name,
            redirect_uris=redirect_uris,
            scopes=scopes,
            grant_types=grant_types,
            auth_method=ClientAuthMethod.NONE
            if public
            else ClientAuthMethod.CLIENT_SECRET_BASIC,
            owner=oauth_clients.find_owner(session, OPERATOR, owner) if owner else None,
            may_introspect=may_introspect,
        )
        client_id, secret = registered.client.client_id, registered.secret
    console.print(f"Registered {name!r}.", markup=False)
    console.print(f"client_id:     {client_id}", markup=False)
    if secret is None:
        console.print("A public client: no secret; it must use PKCE (S256).")
    else:
        console.print(f"client_secret: {secret}", markup=False)
        console.print("Copy the secret now: it is not stored and will not be shown again.")


@oauth.command("list", help="List the registered clients (never their secrets).")
@with_app
def list_clients(app: Flask) -> None:
    with db.transaction() as session:
        table = Table("client id", "name", "type", "grant types", "scopes", "owner", "status")
        for client in oauth_clients.list_clients(session, OPERATOR):
            table.add_row(
                client.client_id,
                escape(client.name),
                "public" if client.is_public else "confidential",
                ", ".join(client.grant_types),
                ", ".join(client.scopes),
                escape(client.owner.username) if client.owner else "",
                "revoked" if client.revoked else "active",
            )
        console.print(table)


@oauth.command("revoke", help="Revoke CLIENT_ID: it can no longer authenticate; its tokens end.")
@click.argument("client_id")
@with_app
def revoke(app: Flask, client_id: str) -> None:
    with operator_transaction() as session:
        name = oauth_clients.revoke_client(session, OPERATOR, client_id).name
    console.print(f"{client_id} ({name}) is revoked; its tokens no longer work.", markup=False)
