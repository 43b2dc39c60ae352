"""``kuzet central``: run the aggregator, and the administrator's commands for users, tokens and the audit."""

from __future__ import annotations

import argparse
import sys

HELP = "run the central aggregator (web page, ingest, routing); manage its users"
EXTRA = "central"  # what `pip install kuzet[...]` adds for this command
ROLES = ("all", "ingest", "web", "routing")  # central.roles.PARTS; here so that --help imports nothing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="central's TOML configuration (defaults work for a trial)")
    parser.add_argument("--data-dir", help="where the database and media live (overrides [storage] dir)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    run = actions.add_parser("run", help="run central: ingest, routing and the web page (the default)")
    run.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="which part this process runs (docs/scale.md); all but 'all' need [store] url (PostgreSQL)",
    )
    run.add_argument(
        "--instance", default="", help="this worker's name among its role's: names its MQTT session"
    )
    run.add_argument(
        "--metrics-port", type=int, help="where an ingest or routing worker serves /healthz and /metrics"
    )
    run.add_argument(
        "--http-port", type=int, help="where this process serves the page (overrides [http] port)"
    )

    user = actions.add_parser("create-user", help="create an operator account, or reset its password")
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=["operator", "supervisor", "technician", "admin"])
    user.add_argument("--display-name", default="")
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    unlock = actions.add_parser(
        "unlock-user", help="lift an account's log-in lock-outs after failed log-ins (audited)"
    )
    unlock.add_argument("username")

    token = actions.add_parser("create-token", help="create an API token for a tool (printed once)")
    token.add_argument("username", help="the account the token acts as")
    token.add_argument("--name", required=True, help="what the token is for, e.g. 'provisioning laptop 3'")

    verify = actions.add_parser(
        "verify-audit", help="check the audit log's hash chain and MACs; exit 1 if it was tampered with"
    )
    verify.add_argument(
        "--checkpoint", metavar="FILE", help="also check against a checkpoint made by audit-checkpoint"
    )
    checkpoint = actions.add_parser(
        "audit-checkpoint",
        help="write a signed checkpoint of the audit log's head (keep it away from central)",
    )
    checkpoint.add_argument("--out", required=True, metavar="FILE", help="where to write the checkpoint")
    reinstate = actions.add_parser(
        "reinstate-device",
        help="lift a device's revocation (audited; re-registering never does it by itself)",
    )
    reinstate.add_argument("device", help="the device's name")
    reinstate.add_argument("--reason", required=True, help="why: goes into the audit log")
    evidence = actions.add_parser(
        "verify-evidence",
        help="check a badge's body-camera evidence chain and recordings; exit 1 unless all verify",
    )
    evidence.add_argument("device", help="the badge's device name")
    evidence.add_argument("--json", action="store_true", help="print the whole report as JSON")
    media = actions.add_parser(
        "verify-media",
        help="check every media file against its SHA-256 name; alert and exit 1 on any mismatch",
    )
    media.add_argument("--json", action="store_true", help="print the whole report as JSON")
    from kuzet.central.store.commands import add_arguments as add_store_arguments

    add_store_arguments(actions)


def run(args: argparse.Namespace) -> int:
    from kuzet.central import config as central_config
    from kuzet.central.context import Central

    config = central_config.load(args.config)
    data_dir = args.data_dir or config.storage.dir
    action = args.action or "run"
    if action == "store":
        from kuzet.central.store.commands import store_command

        return store_command(config, data_dir, args)
    role = getattr(args, "role", "all")
    if action == "run" and role != "all" and not config.store.url:
        print(
            f"--role {role} runs one part of central beside others, which share the store and the live "
            "updates through PostgreSQL: set [store] url, or run --role all on SQLite.",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "metrics_port", None) is not None:
        config.worker.metrics_port = args.metrics_port
    if getattr(args, "http_port", None) is not None:
        config.http.port = args.http_port
    from kuzet.central.store.backend import StoreUnavailable

    try:
        central = Central(config=config, data_dir=data_dir)
    except StoreUnavailable as exc:
        print(f"kuzet central: {exc}", file=sys.stderr)
        return 1
    from kuzet.central.auth import audit

    audit.use_key_file(central.db_path, central.data_dir / config.storage.audit_key_file)
    if action == "run":
        from kuzet.central.service import serve

        audit.ensure_key(central.db())  # created on first start, before anything is audited
        return serve(central, role=role, instance=getattr(args, "instance", ""), bus_url=config.store.url)
    if action == "create-user":
        from kuzet.central.auth.users import create_user_command

        return create_user_command(central, args)
    if action == "unlock-user":
        from kuzet.central.auth.users import unlock_user_command

        return unlock_user_command(central, args)
    if action == "create-token":
        from kuzet.central.auth.tokens import create_token_command

        return create_token_command(central, args)
    if action == "reinstate-device":
        from kuzet.central.store.registry import reinstate_command

        return reinstate_command(central, args)
    if action == "verify-audit":
        from kuzet.central.auth.audit import verify_command

        return verify_command(central, args)
    if action == "audit-checkpoint":
        return audit.checkpoint_command(central, args)
    if action == "verify-evidence":
        from kuzet.central.routing.evidence import verify_command as verify_evidence

        return verify_evidence(central, args)
    if action == "verify-media":
        from kuzet.central.store.integrity import verify_media_command

        return verify_media_command(central, args)
    raise AssertionError(action)
