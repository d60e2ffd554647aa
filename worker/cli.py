"""`ccm-intake`: run the service, poll once, dry-run the classifier, see what is filed, demo."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from config.settings import ConfigError, Settings, load_settings, redact_url
from worker.redaction import protect_logs, scrub

if TYPE_CHECKING:
    from worker.exports import Table as ExportTable
    from worker.runtime import Context

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
# Long paths and reasons stay on one line; tables get room when the output is not a terminal.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


# The settings read by settings_or_exit(): setup_logging() takes the log format from them.
_loaded: list[Settings] = []


def setup_logging(level: str | None = None) -> str:
    """Logs on stderr as CCM_LOG_FORMAT says (worker/logs.py), from ``level`` up (default:
    CCM_LOG_LEVEL); returns the level."""
    from worker import logs

    settings = _loaded[-1] if _loaded else None
    level = (level or (settings.log_level.value if settings else "INFO")).upper()
    logs.configure(level, settings.log_format.value if settings else "text")
    return level


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"ccm-intake: configuration error: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    protect_logs(settings)  # whatever is logged from here on shows none of its secrets
    _loaded[:] = [settings]
    return settings


def one_line(exc: BaseException) -> str:
    """An exception as one line for the screen, with no secret of the settings in it."""
    text = str(exc).strip().splitlines()
    return scrub(text[0] if text else type(exc).__name__)


def move_now(ctx: Context) -> None:
    """Carry out the mailbox moves just decided; when the server cannot be reached, say that
    the next poll will."""
    from worker import intake
    from worker.mailbox import MailboxError

    try:
        actions, _ = intake.sync_mailbox(ctx)
        out.print(f"mailbox: {actions} message(s) moved", highlight=False)
    except MailboxError as exc:
        out.print(f"mailbox: {exc}; the next poll moves them", highlight=False)


def context_or_exit(settings: Settings) -> Context:
    """The context (database migrated, archive made), or one line on why not, and exit 2."""
    from worker.runtime import build_context

    try:
        return build_context(settings)
    except Exception as exc:  # noqa: BLE001 - any failure here is reported in one line
        err.print(
            f"ccm-intake: cannot open the database ({redact_url(settings.db_url)}) "
            f"or archive: {type(exc).__name__}: {one_line(exc)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None


@cli.command()
def run(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    beat: Annotated[bool, typer.Option(help="Run the scheduler in this worker.")] = True,
    beat_only: Annotated[bool, typer.Option(help="Run only the scheduler.")] = False,
    loglevel: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING (default: CCM_LOG_LEVEL).")
    ] = None,
) -> None:
    """Run the worker (and, by default, the scheduler that polls the inbox).

    Example: ccm-intake run --no-beat --concurrency 4
    """
    settings = settings_or_exit()
    context_or_exit(settings)  # creates the schema and the data directory, fails early
    loglevel = setup_logging(loglevel)
    from worker import logs
    from worker.app import app

    # In JSON mode Celery's start-up banner (printed on stdout, not logged) is left out.
    quiet = ["--quiet"] if logs.wants_json(settings.log_format.value) else []
    if beat_only:
        app.start(
            [*quiet, "beat", f"--loglevel={loglevel}", "--scheduler", "celery.beat:Scheduler"]
        )
        return
    argv = [
        *quiet,
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        "--without-mingle",
        "--without-gossip",
    ]
    if beat:
        # The in-memory scheduler: no schedule file in the working directory.
        argv += ["--beat", "--scheduler", "celery.beat:Scheduler"]
    from worker.supervisor import supervise

    # In a child process that is started again if Celery gives up (a restarted Redis makes
    # Celery 5.7 exit): worker/supervisor.py says why nothing is lost.
    raise typer.Exit(supervise(lambda: app.worker_main(argv)))


@cli.command()
def listen(
    loglevel: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING (default: CCM_LOG_LEVEL).")
    ] = None,
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

    from kombu.exceptions import OperationalError

    def poll_now() -> None:
        try:
            poll_task.delay()  # the same idempotent poll as the beat's, under the same lock
        except OperationalError as exc:  # broker down or refusing us: the beat poll remains
            logging.getLogger(__name__).warning(
                "listen: cannot queue a poll on %s: %s",
                redact_url(settings.broker_url),
                one_line(exc),
            )

    watch(settings, poll_now, stop)


@cli.command()
def poll() -> None:
    """Poll the inbox once now, process what came in and send what is due — no broker needed.

    Example: ccm-intake poll
    """
    settings = settings_or_exit()
    setup_logging()
    from worker import intake, mailer, processing
    from worker.mailbox import MailboxError

    ctx = context_or_exit(settings)
    try:
        result = intake.poll_once(ctx)
    except MailboxError as exc:
        err.print(f"ccm-intake: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"poll: {result}", highlight=False)
    from rich.progress import track

    todo = result.new + result.unfinished  # a first poll of a full inbox takes a while
    for message_id in track(todo, description="processing", console=err, disable=len(todo) < 3):
        out.print(processing.process_message(ctx, message_id).summary, highlight=False)
    out.print(f"outbox: {mailer.send_due(ctx.db, ctx.settings)}", highlight=False)
    actions, copies = intake.sync_mailbox(ctx)
    out.print(f"mailbox: {actions} actions, {copies} copies to Sent", highlight=False)


@cli.command()
def metrics(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9108,
) -> None:
    """Serve Prometheus metrics on /metrics (and /healthz), read from the database at each
    scrape: messages by status, review queue, outbox by purpose and status, last poll of each
    folder and its duration, age of the oldest unfinished message and unsent mail.

    Example: ccm-intake metrics --host 127.0.0.1 --port 9108
    """
    import signal
    import threading

    from worker.metrics import serve
    from worker.store import Database

    settings = settings_or_exit()
    setup_logging()
    db = Database(settings.db_url)
    try:
        db.create_schema()  # the columns it reads exist, whatever started first
    except Exception as exc:  # noqa: BLE001 - any failure here is reported in one line
        err.print(
            f"ccm-intake: cannot open the database ({redact_url(settings.db_url)}): "
            f"{type(exc).__name__}: {one_line(exc)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve(db, host, port, stop)
    except OSError as exc:
        err.print(f"ccm-intake: cannot listen on {host}:{port}: {exc.strerror}", markup=False)
        raise typer.Exit(1) from None
    finally:
        db.dispose()


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
    from parsers.limits import OverLimit
    from parsers.message import UnparseableMessage
    from worker.runtime import analyse_message

    settings = settings_or_exit()
    setup_logging("WARNING")
    registry, directory = load_registry(), load_directory()
    results: list[dict[str, object]] = []
    for path in files:
        try:
            analysis = analyse_message(settings, registry, directory, path.read_bytes(), ocr=ocr)
        except (UnparseableMessage, OverLimit) as exc:
            why = str(exc) if isinstance(exc, OverLimit) else f"unreadable message: {exc}"
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
                    "reason": why,
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
    if kind == "delegation" and found.get("purged"):  # worker/retention.py kept the count
        return f"{found.get('delegate_count', 0)} delegate(s), names purged {found['purged']}"
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
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record.")] = False,
) -> None:
    """Each obligation (who owes it, who sent it, who has not), what is filed per State, and
    where the other messages, the outbox and the polls stand.

    Example: ccm-intake status --json | jq '.obligations[] | {cycle, missing}'
    """
    from worker.digest import geneva_date
    from worker.overview import overview
    from worker.store import utcnow

    settings = settings_or_exit()
    ctx = context_or_exit(settings)
    record = overview(ctx, geneva_date(utcnow()))
    if as_json:
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        return
    duties = Table(
        "obligation", "due", "days left", "owed by", "received", "missing", title="Obligations"
    )
    for ob in record["obligations"]:
        missing = ob["missing"]
        shown = " ".join(missing[:12]) + (f" … +{len(missing) - 12}" if len(missing) > 12 else "")
        duties.add_row(
            ob["label"],
            ob["due"] or "per State",
            "—" if ob["days_left"] is None else str(ob["days_left"]),
            str(ob["expected"]),
            str(ob["received"]),
            f"{len(missing)}: {shown}" if missing else "0",
        )
    out.print(duties)
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
    out.print(f"review queue: {record['review_queue']}")
    for box in record["mailboxes"]:
        line = f"polls of {box['mailbox']}: last success {box['last_success'] or 'never'}"
        if box["last_error"]:
            line += f"; last error {box['last_error_at']}: {box['last_error']}"
        out.print(line, highlight=False, markup=False)
    out.print(
        f"database: {redact_url(settings.db_url)}\narchive: {settings.archive_path}",
        highlight=False,
    )


review_cli = typer.Typer(no_args_is_help=True, help="Messages waiting for a person's decision.")
cli.add_typer(review_cli, name="review")


@review_cli.command("list")
def review_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per item.")] = False,
    quarantined: Annotated[
        bool, typer.Option("--quarantined", help="The quarantined messages instead, with why.")
    ] = False,
) -> None:
    """What waits for a decision, oldest first, with why and the candidates.

    Example: ccm-intake review list
    """
    settings = settings_or_exit()
    from worker.runtime import build_context
    from worker.store import Status

    ctx = build_context(settings)
    items = []
    for m in ctx.db.review_queue(Status.quarantined if quarantined else Status.needs_review):
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
    if quarantined:
        out.print(
            f"{len(items)} quarantined. Read one again once a limit is raised: ccm-intake "
            "reprocess ID; or decide: ccm-intake review resolve ID --not-submission, or "
            "--state ISO3 --kind KIND (--no-ack while it cannot be read)"
        )
    else:
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

    A quarantined message too: read again first; if it still cannot be read, it is filed as
    received (the mail alone), only with --kind and --no-ack.

    Example: ccm-intake review resolve 42 --state CHE --kind delegation
    """
    if (state is None) == (not not_submission):
        err.print("ccm-intake: give either --state ISO3 or --not-submission")
        raise typer.Exit(2)
    settings = settings_or_exit()
    setup_logging("WARNING")
    from worker import mailer
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
    move_now(ctx)


@cli.command()
def reprocess(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Message numbers (#) or references.")
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every quarantined message.")
    ] = False,
) -> None:
    """Read quarantined, review or set-aside messages again from their kept bytes, under
    today's settings (after raising a limit, say), and file or answer them as that decides.

    Example: CCM_MAX_PDF_PAGES=2000 ccm-intake reprocess --all-failed
    """
    settings = settings_or_exit()
    setup_logging("WARNING")
    from rich.progress import track

    from worker import mailer
    from worker.processing import ReviewError, reprocess
    from worker.store import Status

    ctx = context_or_exit(settings)
    ids: list[int] = []
    for target in targets or ():
        found = int(target.lstrip("#")) if target.lstrip("#").isdigit() else None
        found = found if found is not None else ctx.db.message_of_reference(target)
        if found is None:
            err.print(f"ccm-intake: no message #{target} and no reference {target!r}")
            raise typer.Exit(2)
        ids.append(found)
    if all_failed:
        ids += ctx.db.message_ids_with(Status.quarantined)
    if not ids:
        err.print("ccm-intake: nothing to reprocess (give numbers, references or --all-failed)")
        raise typer.Exit(2 if not all_failed else 0)
    failed = 0
    for message_id in track(ids, description="reprocessing", console=err, disable=len(ids) < 3):
        try:
            done = reprocess(ctx, message_id)
        except ReviewError as exc:
            err.print(f"ccm-intake: {exc}", highlight=False)
            failed += 1
            continue
        out.print(done.summary, highlight=False)
    out.print(f"outbox: {mailer.send_due(ctx.db, settings)}", highlight=False)
    move_now(ctx)
    if failed:
        raise typer.Exit(1)


@cli.command()
def backfill(
    since: Annotated[str, typer.Option(help="The first day to import, YYYY-MM-DD.")],
) -> None:
    """Import the mail already in the watched folder from a date on, without acknowledging
    any of it: kept, filed, set aside or queued for review like new mail, each
    acknowledgement recorded as held back. The polls then go on from the folder's last
    message; mail before the date stays on the server, not imported.

    Example: ccm-intake backfill --since 2017-01-01
    """
    from datetime import date

    try:
        day = date.fromisoformat(since)
    except ValueError:
        err.print(f"ccm-intake: --since must be a date as YYYY-MM-DD, not {since!r}")
        raise typer.Exit(2) from None
    settings = settings_or_exit()
    setup_logging("WARNING")
    from rich.progress import Progress

    from worker import intake, processing
    from worker.mailbox import MailboxError

    ctx = context_or_exit(settings)
    with Progress(console=err, transient=True) as bar:
        fetching = bar.add_task("fetching", total=None)
        try:
            kept = intake.backfill(
                ctx, day, progress=lambda n, total: bar.update(fetching, completed=n, total=total)
            )
        except MailboxError as exc:
            err.print(f"ccm-intake: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        reading = bar.add_task("reading", total=len(kept.new))
        outcomes: dict[str, int] = {}
        for message_id in kept.new:
            done = processing.process_message(
                ctx, message_id, hold_acks=f"held back: imported by backfill since {day}"
            )
            outcomes[done.status] = outcomes.get(done.status, 0) + 1
            bar.advance(reading)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "nothing new"
    out.print(
        f"backfill since {day}: {kept.found} message(s) found, {len(kept.new)} new,"
        f" {kept.duplicates} kept already; {summary}; no acknowledgement sent;"
        f" polls go on after UID {kept.position}",
        highlight=False,
    )
    move_now(ctx)


@cli.command("resend-ack")
def resend_ack(
    reference: Annotated[str, typer.Argument(help="The submission's reference.")],
) -> None:
    """Send the acknowledgement of a submission once more, as a new mail (a mission says it
    never came). Rate limits do not apply: a person asked for it.

    Example: ccm-intake resend-ack CCM/7MSP/DEL/FRA/001
    """
    settings = settings_or_exit()
    setup_logging("WARNING")
    from worker import mailer
    from worker.processing import ReviewError
    from worker.processing import resend_ack as queue_resend

    ctx = context_or_exit(settings)
    try:
        outbox_id = queue_resend(ctx, reference)
    except ReviewError as exc:
        err.print(f"ccm-intake: {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"outbox: {mailer.send_due(ctx.db, settings, only=outbox_id)}", highlight=False)


db_cli = typer.Typer(no_args_is_help=True, help="The database schema.")
cli.add_typer(db_cli, name="db")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (every command that opens the database does it too).

    Example: CCM_DATABASE_URL=postgresql+psycopg://ccm@db/ccm ccm-intake db upgrade
    """
    settings = settings_or_exit()
    from worker.store import Database

    Database(settings.db_url).create_schema()
    out.print(f"schema up to date: {redact_url(settings.db_url)}", highlight=False)


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
def purge(
    before: Annotated[
        str | None,
        typer.Option(
            help="Purge mail received before this day (YYYY-MM-DD, UTC); "
            "default: CCM_RETENTION_DAYS days ago."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be removed.")
    ] = False,
) -> None:
    """Remove the personal data of mail received before a day: raw mail, filed files, rosters,
    addresses, subjects. What was submitted by which State, when and under which reference
    stays, and the same mail polled again is not filed again. Mail waiting for review is kept.

    Example: ccm-intake purge --before 2012-01-01 --dry-run
    """
    from datetime import date

    from worker import retention
    from worker.store import utcnow

    settings = settings_or_exit()
    if before is None:
        if not settings.retention_days:
            err.print("ccm-intake: give --before YYYY-MM-DD (or set CCM_RETENTION_DAYS)")
            raise typer.Exit(2)
        cutoff = retention.cutoff(settings.retention_days, utcnow())
    else:
        try:
            cutoff = retention.day_start(date.fromisoformat(before))
        except ValueError:
            err.print(f"ccm-intake: --before {before!r} is not a date (YYYY-MM-DD)")
            raise typer.Exit(2) from None
    if cutoff > utcnow():
        err.print(f"ccm-intake: --before {before} is in the future", highlight=False)
        raise typer.Exit(2)
    setup_logging("WARNING")
    ctx = context_or_exit(settings)
    try:
        report = retention.purge(ctx, cutoff, dry_run=dry_run)
    except OSError as exc:
        err.print(f"ccm-intake: purge stopped: {one_line(exc)}; run it again", markup=False)
        raise typer.Exit(1) from None
    if dry_run:
        table = Table("#", "received (UTC)", "status", "State", "kind", "files removed")
        for item in report.items:
            table.add_row(
                str(item.message_id),
                item.internaldate.strftime("%Y-%m-%d %H:%M"),
                item.status,
                item.state_iso3 or "—",
                item.kind or "—",
                "  ".join([item.raw_path, *(folder + "/" for _, folder in item.submissions)]),
            )
        out.print(table)
    out.print(str(report), highlight=False)


export_cli = typer.Typer(
    no_args_is_help=True, help="Tables for the secretariat, as CSV or Excel (XLSX)."
)
cli.add_typer(export_cli, name="export")

FormatOption = Annotated[str, typer.Option("--format", "-f", help="csv or xlsx.")]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="The file to write (default: a name of its own; CSV: stdout)."
    ),
]


def _export(table: ExportTable, fmt: str, output: Path | None, default_name: str) -> None:
    from worker.exports import FORMATS, write_csv, write_xlsx

    if fmt not in FORMATS:
        err.print(f"ccm-intake: --format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        raise typer.Exit(2)
    if fmt == "csv" and output is None:
        write_csv(table, sys.stdout)
        return
    path = output or Path(f"{default_name}.{fmt}")
    if fmt == "csv":
        # With a byte-order mark, Excel opens the accents of Côte d'Ivoire as they are.
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            write_csv(table, f)
    else:
        write_xlsx(table, path)
    err.print(f"{len(table.rows)} rows written to {path}", highlight=False, soft_wrap=True)


@export_cli.command("delegations")
def export_delegations(
    meeting: Annotated[str, typer.Option(help="The meeting's code, as in meetings.csv.")] = "7MSP",
    fmt: FormatOption = "xlsx",
    output: OutputOption = None,
) -> None:
    """Every delegate of the latest list of each State for a meeting, for accreditation.

    Example: ccm-intake export delegations --meeting 7MSP --format xlsx -o 7MSP.xlsx
    """
    from worker.exports import delegations_table

    ctx = context_or_exit(settings_or_exit())
    _export(delegations_table(ctx, meeting), fmt, output, f"delegations-{meeting}")


@export_cli.command("article7")
def export_article7(
    year: Annotated[int, typer.Option(help="The calendar year the reports cover.")],
    fmt: FormatOption = "xlsx",
    output: OutputOption = None,
) -> None:
    """Each State Party owing the Article 7 report covering a year: on time, late or missing,
    and the forms its latest version holds.

    Example: ccm-intake export article7 --year 2016 --format csv > article7-2016.csv
    """
    from worker.exports import article7_table

    ctx = context_or_exit(settings_or_exit())
    _export(article7_table(ctx, year), fmt, output, f"article7-{year}")


@cli.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 120.0,
) -> None:
    """Run everything on embedded servers with sample mission mails, and show what happens.

    Example: ccm-intake demo --timeout 180
    """
    from worker.demo import run_demo

    raise typer.Exit(run_demo(out, timeout=timeout))


mailbox_cli = typer.Typer(no_args_is_help=True, help="The mailbox the service reads and sends.")
cli.add_typer(mailbox_cli, name="mailbox")


@mailbox_cli.command("check")
def mailbox_check() -> None:
    """Test the connection with the settings: reach, TLS, login (password or OAuth token),
    folders, IDLE, SMTP. One line per check; sends no mail. Exit 0 when all pass, 1 if not.

    Example: ccm-intake mailbox check
    """
    settings = settings_or_exit()
    from worker.check import Outcome, run_checks

    failed = 0
    for check in run_checks(settings):
        failed += check.outcome is Outcome.fail
        out.print(scrub(str(check)), markup=False, highlight=False)
    out.print("all checks passed" if not failed else f"{failed} check(s) failed", markup=False)
    raise typer.Exit(1 if failed else 0)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
