"""The ``onedata`` command: init, demo, serve, harvest, review."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask

from portal import config as settings
from portal import create_app, db, migrate
from portal.cli_common import console, instance_path, with_app
from portal.cli_harvest import harvest, print_summary, run_with_progress, worker
from portal.cli_oauth import oauth
from portal.cli_review import review
from portal.cli_security import security
from portal.cli_users import users


@click.group(help="One Data portal of Kota Pontianak.")
def main() -> None:
    pass


@main.command(help="Create the instance folder, its secret key and the database tables.")
def init() -> None:
    _init()
    console.print(f"Instance ready in [bold]{instance_path()}[/bold].")


def _init() -> Flask:
    if not os.environ.get("ONEDATA_SECRET_KEY"):
        settings.write_instance_secret(instance_path())
    app = create_app({"INSTANCE_PATH": str(instance_path())})
    with app.app_context():
        migrate.upgrade(db.get_engine())
    return app


@main.command(help="Initialise an embedded instance, harvest the sample sources, and serve.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Stop after harvesting.")
def demo(host: str, port: int, no_serve: bool) -> None:
    from portal.demo import load_sample_sources
    from portal.demo_accounts import create_demo_accounts

    app = _init()
    with app.app_context():
        with db.transaction() as session:
            sources = load_sample_sources(session, Path(app.config["DATASETS_PATH"]))
            names = [s.name for s in sources]
            demo_accounts = create_demo_accounts(session, [s.organization for s in sources])
        console.print(
            f"Harvesting {len(names)} sample sources from {app.config['DATASETS_PATH']} …"
        )
    jobs = run_with_progress(app, names, dry_run=False)
    print_summary(jobs)
    if demo_accounts:
        console.print(
            "\nDemo accounts, shown only this once (stewards and admins set up two-factor "
            "sign-in when they first sign in):"
        )
        for username, role, password in demo_accounts:
            line = f"  {role.value:<9} {username:<22} {password}"
            console.print(line, markup=False, highlight=False)
    if not no_serve:
        console.print(f"\nServing on [bold]http://{host}:{port}[/bold]  (Ctrl+C to stop)")
        app.run(host=host, port=port, debug=False, use_reloader=False)


@main.command(help="Serve the portal with the built-in server (use gunicorn in production).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_app
def serve(app: Flask, host: str, port: int) -> None:
    app.run(host=host, port=port, debug=False, use_reloader=False)


main.add_command(harvest)
main.add_command(worker)
main.add_command(users)
main.add_command(oauth)
main.add_command(security)
main.add_command(review)


if __name__ == "__main__":
    main()
