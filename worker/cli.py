"""`ccm-intake`: run the service, poll once, dry-run the classifier, see what is filed, demo."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from config.settings import ConfigError, Settings, load_settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
# Long paths and reasons stay on one line; tables get room when the output is not a terminal.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # mail-parser logs ~90 DEBUG lines per message and a WARNING for every part type it does
    # not handle itself ("Email content 'png' not handled"): parsers/message.py reads those.
    logging.getLogger("mailparser").setLevel(logging.ERROR)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(f"ccm-intake: configuration error: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@cli.command()
def run(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    beat: Annotated[bool, typer.Option(help="Run the scheduler in this worker.")] = True,
    beat_only: Annotated[bool, typer.Option(help="Run only the scheduler.")] = False,
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Run the worker (and, by default, the scheduler that polls the inbox)."""
    settings = settings_or_exit()
    from worker.runtime import build_context

    try:
        build_context(settings)  # creates the schema and the data directory, fails early
    except Exception as exc:  # noqa: BLE001 - any failure here is reported in one line
        err.print(
            f"ccm-intake: cannot open the database or archive: {exc}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    setup_logging(loglevel)
    from worker.app import app

    if beat_only:
        app.start(["beat", f"--loglevel={loglevel}", "--scheduler", "celery.beat:Scheduler"])
        return
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        "--without-mingle",
        "--without-gossip",
    ]
    if beat:
        # The in-memory scheduler: no schedule file in the working directory.
        argv += ["--beat", "--scheduler", "celery.beat:Scheduler"]
    app.worker_main(argv)


@cli.command()
def listen(
    loglevel: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Watch the inbox with IMAP IDLE and have it polled the moment mail arrives.

    Runs beside the workers (one per mailbox); the beat poll stays as the safety net.
    Example: ccm-intake listen
    """
    settings = settings_or_exit()
    setup_logging(loglevel)
    import signal
    import threading

    from worker.listener import listen as watch
    from worker.tasks import poll as poll_task

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger(__name__).info("listening on %s", settings.mailbox_key)

    def poll_now() -> None:
        poll_task.delay()  # the same idempotent poll as the beat's, under the same lock

    watch(settings, poll_now, stop)


@cli.command()
def poll() -> None:
    """Poll the inbox once now, process what came in and send what is due — no broker needed."""
    settings = settings_or_exit()
    setup_logging()
    from worker import intake, mailer, processing
    from worker.mailbox import MailboxError
    from worker.runtime import build_context

    ctx = build_context(settings)
    try:
        result = intake.poll_once(ctx)
    except MailboxError as exc:
        err.print(f"ccm-intake: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"poll: {result}", highlight=False)
    for message_id in result.new + result.unfinished:
        out.print(processing.process_message(ctx, message_id).summary, highlight=False)
    out.print(f"outbox: {mailer.send_due(ctx.db, ctx.settings)}", highlight=False)
    actions, copies = intake.sync_mailbox(ctx)
    out.print(f"mailbox: {actions} actions, {copies} copies to Sent", highlight=False)


@cli.command()
def classify(
    files: Annotated[list[Path], typer.Argument(help=".eml files", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    ocr: Annotated[
        bool, typer.Option(help="Read scans with Tesseract (slow: ~0.5–3 s a page).")
    ] = True,
) -> None:
    """Dry run: what would be decided for each .eml file. No database, no network, no writes.

    Example: ccm-intake classify --json --no-ocr inbox/*.eml
    """
    from config.registry import load_directory, load_registry
    from parsers.message import UnparseableMessage
    from worker.runtime import analyse_message

    settings = settings_or_exit()
    setup_logging("WARNING")
    registry, directory = load_registry(), load_directory()
    results: list[dict[str, object]] = []
    for path in files:
        try:
            analysis = analyse_message(settings, registry, directory, path.read_bytes(), ocr=ocr)
        except UnparseableMessage as exc:
            results.append(
                {
                    "file": str(path),
                    "state": None,
                    "kind": None,
                    "kinds": [],
                    "confidence": 0.0,
                    "ack": False,
                    "review": False,
                    "outcome": "quarantine",
                    "reason": f"unreadable message: {exc}",
                    "evidence": [],
                }
            )
            continue
        results.append({"file": str(path), **analysis.summary()})
    if as_json:
        for record in results:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    table = Table("file", "state", "kind(s)", "conf.", "ack", "outcome", "reason")
    for r in results:
        kinds = r.get("kinds") or [r.get("kind")]
        assert isinstance(kinds, list)
        table.add_row(
            Path(str(r["file"])).name,
            str(r["state"] or "—"),
            ", ".join(map(str, kinds)),
            f"{r['confidence']}",
            "yes" if r["ack"] else "no",
            str(r["outcome"]),
            str(r["reason"]),
        )
    out.print(table)


def describe(kind: str, details: str) -> str:
    """One line on what a filed submission says (its roster, its report's cover)."""
    if not details:
        return ""
    found = json.loads(details)
    if kind == "delegation":
        people = found.get("delegates", [])
        head = next((d for d in people if d.get("role") == "head"), None)
        text = f"{len(people)} delegate(s)"
        if head:
            text += f", head: {(head.get('honorific', '') + ' ' + head['name']).strip()}"
        return text
    if kind == "article7":
        what = "initial" if found.get("initial") else f"annual {found.get('reporting_year') or '?'}"
        forms = found.get("forms", [])
        changed = [f["form"] for f in forms if f.get("status") in ("changed", "present")]
        return f"{what}; forms {''.join(changed) or '—'} with content, {len(forms)} listed"
    return ""


@cli.command()
def status() -> None:
    """What is filed, per State, and where the other messages stand."""
    settings = settings_or_exit()
    from worker.runtime import build_context

    ctx = build_context(settings)
    table = Table(
        "State",
        "kind",
        "for",
        "version",
        "received (UTC)",
        "reference",
        "what it says",
        title="Filed (latest version of each)",
    )
    for sub in ctx.db.latest_submissions():
        try:
            name = f"{sub.state_iso3} {ctx.registry.get(sub.state_iso3).name_en}"
        except KeyError:
            name = sub.state_iso3
        table.add_row(
            name,
            sub.kind,
            sub.cycle or "—",
            str(sub.version),
            sub.received_at.strftime("%Y-%m-%d %H:%M"),
            sub.reference,
            describe(sub.kind, sub.details),
        )
    out.print(table)
    counts = ctx.db.status_counts()
    out.print("messages: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    sent = ctx.db.outbox_counts()
    out.print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(sent.items())) or "empty"))
    out.print(f"database: {settings.db_url}\narchive: {settings.archive_path}", highlight=False)


review_cli = typer.Typer(no_args_is_help=True, help="Messages waiting for a person's decision.")
cli.add_typer(review_cli, name="review")


@review_cli.command("list")
def review_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per item.")] = False,
) -> None:
    """What waits for a decision, oldest first, with why and the candidates.

    Example: ccm-intake review list
    """
    settings = settings_or_exit()
    from worker.runtime import build_context

    ctx = build_context(settings)
    items = []
    for m in ctx.db.review_queue():
        analysis = json.loads(m.analysis or "{}")
        items.append(
            {
                "id": m.id,
                "received": m.internaldate.isoformat(),
                "from": m.from_addr,
                "subject": m.subject,
                "reason": m.reason,
                "kinds": analysis.get("kinds", []),
                "candidates": analysis.get("candidates", []),
            }
        )
    if as_json:
        for item in items:
            sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        return
    table = Table("#", "received (UTC)", "from", "subject", "kinds", "candidates", "why")
    for item in items:
        table.add_row(
            str(item["id"]),
            str(item["received"])[:16].replace("T", " "),
            str(item["from"]),
            str(item["subject"])[:50],
            ", ".join(map(str, item["kinds"])),
            ", ".join(f"{c} {s}" for c, s in item["candidates"]),
            str(item["reason"]),
        )
    out.print(table)
    out.print(f"{len(items)} waiting. Decide with: ccm-intake review resolve ID --state ISO3")


@review_cli.command("resolve")
def review_resolve(
    message: Annotated[int, typer.Argument(help="The # shown by `review list`.")],
    state: Annotated[
        str | None, typer.Option(help="ISO 3166 alpha-3 of the State that sent it.")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="delegation, article7 or other; repeat for several.")
    ] = None,
    not_submission: Annotated[
        bool, typer.Option("--not-submission", help="Set it aside: no State, no answer.")
    ] = False,
    ack: Annotated[bool, typer.Option(help="Acknowledge it to the sender.")] = True,
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """File a waiting message under a State (folder, acknowledgement, mailbox move) or set it aside.

    Example: ccm-intake review resolve 42 --state CHE --kind delegation
    """
    if (state is None) == (not not_submission):
        err.print("ccm-intake: give either --state ISO3 or --not-submission")
        raise typer.Exit(2)
    settings = settings_or_exit()
    setup_logging("WARNING")
    from worker import intake, mailer
    from worker.mailbox import MailboxError
    from worker.processing import Decision, ReviewError, resolve_review
    from worker.runtime import build_context

    ctx = build_context(settings)
    decision = Decision(
        state_iso3=state.upper() if state else None, kinds=tuple(kind or ()), ack=ack, note=note
    )
    try:
        done = resolve_review(ctx, message, decision)
    except ReviewError as exc:
        err.print(f"ccm-intake: {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(done.summary, highlight=False)
    for outbox_id in done.outbox_ids:
        out.print(f"acknowledgement: {mailer.send_due(ctx.db, settings, only=outbox_id)}")
    try:
        actions, _ = intake.sync_mailbox(ctx)
        out.print(f"mailbox: {actions} message(s) moved")
    except MailboxError as exc:
        out.print(f"mailbox: {exc}; the next poll moves it", highlight=False)


db_cli = typer.Typer(no_args_is_help=True, help="The database schema.")
cli.add_typer(db_cli, name="db")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (every command that opens the database does it too)."""
    settings = settings_or_exit()
    from worker.store import Database

    Database(settings.db_url).create_schema()
    out.print(f"schema up to date: {settings.db_url}", highlight=False)


@db_cli.command("revision")
def db_revision(message: Annotated[str, typer.Argument(help="What the change is.")]) -> None:
    """For developers: write a migration for what changed in worker/store.py's models.

    Example: CCM_DATA_DIR=/tmp/ccm-mig ccm-intake db revision "add the delegate table"
    """
    settings = settings_or_exit()
    from worker.store import Database

    Database(settings.db_url).new_migration(message)


digest_cli = typer.Typer(no_args_is_help=True, help="The secretary's daily digest.")
cli.add_typer(digest_cli, name="digest")


@digest_cli.command("preview")
def digest_preview(
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to write the HTML.", dir_okay=False)
    ],
    today: Annotated[
        str | None, typer.Option(help="The day (YYYY-MM-DD, Geneva); default: today.")
    ] = None,
) -> None:
    """Write the HTML of a day's digest to a file: nothing is sent, nothing is written to the DB.

    Example: ccm-intake digest preview --today 2017-08-14 --out digest.html
    """
    from datetime import date

    from sqlalchemy.exc import SQLAlchemyError

    from config.registry import load_directory, load_registry
    from worker.digest import geneva_date, preview_html
    from worker.runtime import Context
    from worker.store import Archive, Database, utcnow

    try:
        day = date.fromisoformat(today) if today else geneva_date(utcnow())
    except ValueError:
        err.print(f"ccm-intake: --today {today!r} is not a date (YYYY-MM-DD)", highlight=False)
        raise typer.Exit(2) from None
    settings = settings_or_exit()
    db_file = settings.db_url.split("///", 1)[-1] if settings.db_url.startswith("sqlite") else ""
    if db_file and not Path(db_file).is_file():
        err.print(f"ccm-intake: no database at {db_file}: nothing to show", highlight=False)
        raise typer.Exit(1)
    # Not build_context(): that would migrate the schema, and a preview writes nothing.
    ctx = Context(
        settings=settings,
        db=Database(settings.db_url),
        archive=Archive(settings.archive_path),
        registry=load_registry(),
        directory=load_directory(),
    )
    try:
        html = preview_html(ctx, day)
    except SQLAlchemyError as exc:
        err.print(
            f"ccm-intake: cannot read the database ({exc.__class__.__name__}); "
            "run `ccm-intake db upgrade` first?",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        ctx.db.dispose()
    out_file.write_text(html, encoding="utf-8")
    out.print(f"digest of {day.isoformat()}: {out_file}", highlight=False)


reminders_cli = typer.Typer(no_args_is_help=True, help="Reminders of deadlines to States.")
cli.add_typer(reminders_cli, name="reminders")


@reminders_cli.command("plan")
def reminders_plan(
    today: Annotated[str, typer.Option(help="The day to plan (YYYY-MM-DD, Geneva).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per reminder.")] = False,
) -> None:
    """Who would be reminded that day, of what and why — sending nothing, writing nothing.

    One row per State x obligation x offset, States without a contact included (marked
    not sendable). What is filed and what the ledger holds are read from the database when
    there is one.

    Example: ccm-intake reminders plan --today 2017-08-11
    """
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy.exc import SQLAlchemyError

    from config.calendar import load_contacts
    from config.registry import load_registry
    from worker.reminders import calendar_for, plan_reminders
    from worker.store import Database

    try:
        day = date.fromisoformat(today)
    except ValueError:
        err.print(f"ccm-intake: --today {today!r} is not a date (YYYY-MM-DD)", highlight=False)
        raise typer.Exit(2) from None
    settings = settings_or_exit()
    calendar = calendar_for(settings)
    db_file = settings.db_url.split("///", 1)[-1] if settings.db_url.startswith("sqlite") else ""
    # Not build_context(): that would create and migrate the database; a plan writes nothing.
    db = None if db_file and not Path(db_file).is_file() else Database(settings.db_url)
    try:
        planned = plan_reminders(
            db,
            load_registry(),
            calendar,
            load_contacts(),
            day,
            today=datetime.now(ZoneInfo(calendar.timezone)).date(),
        )
    except SQLAlchemyError as exc:
        err.print(
            f"ccm-intake: cannot read the database ({exc.__class__.__name__}); "
            "run `ccm-intake db upgrade` first?",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        if db is not None:
            db.dispose()
    if as_json:
        for item in planned:
            sys.stdout.write(json.dumps(item.as_json(), ensure_ascii=False) + "\n")
        return
    if db is None:
        err.print("(no database yet: planned as if nothing had been submitted)", highlight=False)
    table = Table("State", "obligation", "offset", "due", "contact", "lang", "send", "why")
    for item in planned:
        row = item.as_json()
        table.add_row(
            str(row["state"]),
            f"{row['obligation']} {row['cycle']}",
            str(row["offset_days"]),
            str(row["due_date"]),
            str(row["contact"] or "—"),
            str(row["language"]),
            "yes" if item.sendable else "no",
            item.reason,
        )
    out.print(table)
    sendable = sum(1 for item in planned if item.sendable)
    out.print(
        f"{day.isoformat()}: {len(planned)} reminder(s) due, {sendable} would be sent",
        highlight=False,
    )


@cli.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 120.0,
) -> None:
    """Run everything on embedded servers with sample mission mails, and show what happens."""
    from worker.demo import run_demo

    raise typer.Exit(run_demo(out, timeout=timeout))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
