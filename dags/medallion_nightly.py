"""Airflow 3 DAGs that run the ``medallion`` binary: nightly bronze >> silver >> gold (whole, or
sharded by partner), weekly maintain.

``medallion_nightly``
    At 01:00 UTC every day, for the business date that just ended, runs
    ``medallion run --stages bronze --date {{ ds }}``, then ``silver``, then ``gold``: each
    task is one stage, recorded in the run ledger (``medallion status``), under the lake lock,
    with the binary's own retries of transient failures.
    The schedule is a *data-interval* cron timetable, so the run that starts on
    2026-11-20 at 01:00 has ``ds`` = 2026-11-19: it processes the day before, as the crontab
    example does with ``date -d yesterday``. (Airflow 3's plain ``schedule="0 1 * * *"``
    would give ``ds`` = the day the run starts, whose feeds are not complete yet.)
    ``airflow dags test medallion_nightly 2026-11-19`` processes 2026-11-19.
    ``catchup=False``: a new deployment does not backfill; use ``medallion backfill`` (or
    ``airflow backfill create``) for older dates. One run at a time (silver for a date builds
    on the state the previous date left).

``medallion_sharded``
    The same night at scale: bronze and silver mapped over partner shards with dynamic task
    mapping (``.expand``), then gold once. ``plan`` splits the date's partners into
    ``params.shards`` groups (round-robin over the sorted ids); each mapped ``shard`` task runs
    ``medallion run --stages bronze,silver --date {{ ds }} --partners a,b,…`` (a worker per
    shard, possibly on different machines against one S3 lake: each holds only its partners'
    locks, and silver commits under a short lake-wide commit lock); ``gold`` runs
    ``medallion run --stages gold`` after every shard (``none_failed``: shards without feeds
    are skipped) and refuses, naming them, if partners with landed feeds have not completed
    silver. Unscheduled (``schedule=None``): trigger it, or give it the nightly timetable
    and pause ``medallion_nightly`` (both on would process each date twice).
    Params (``airflow dags trigger --conf`` / ``dags test --conf``):
    ``partners`` a list of partner ids (default: the Airflow Variable ``medallion_partners``,
    comma-separated; else the partner folders that have files for ``{{ ds }}`` in a local
    landing zone; an S3 landing zone needs one of the two), ``shards`` the number of groups
    (default 4), ``engine`` the gold engine (default: Variable ``medallion_engine``; passed
    to gold as ``MEDALLION_ENGINE`` when not empty, e.g. ``df://scheduler:50050``).

``medallion_maintain``
    Sundays at 04:00 UTC (after the nightly run): ``medallion maintain`` compacts, vacuums and
    checkpoints the silver Delta tables. It takes the lake lock, so it never runs beside a
    nightly stage: whichever comes second waits for the lock, then exits 5 and is retried.

Configuration (environment of the Airflow *worker*, read when the task runs)
    MEDALLION_BIN         path of the binary (default ``medallion``, looked up on PATH)
    MEDALLION_LAKE        the lake: a folder or ``s3://bucket/prefix``
    MEDALLION_LANDING     the landing zone: a folder or ``s3://bucket/prefix``
    MEDALLION_WAREHOUSE   where gold is published: ``postgres://…`` (or DATABASE_URL) or
                          ``sqlite://file.db``; by default the SQLite file
                          ``<lake>/warehouse.db`` for a local lake
    MEDALLION_LOCK_TIMEOUT  seconds a command waits for the lake lock (default 60)
    AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
                          for S3 / MinIO; MEDALLION_LOG for log verbosity.
    The binary reads these itself; the tasks pass the worker's whole environment through
    (``append_env=True``), so nothing secret is written into the DAG or rendered templates.
    Airflow settings that tune the DAGs: none; change the constants below.

Exit codes of the binary (README "Exit codes") and what the tasks make of them
    0  success                                  -> task success
    1  the run failed (data or a bug)           -> task FAILED, not retried (retrying will
                                                   not change the data; alert, fix, clear)
    2  bad command line or configuration        -> task FAILED, not retried
    3  storage or a service unavailable         -> retried: 3 retries, exponential backoff
                                                   from 2 min, at most 30 min apart
    4  nothing to do (no feeds for that date)   -> task SKIPPED; silver and gold are then
                                                   skipped too (default trigger rule
                                                   ``all_success``), the run is not failed
    5  the lake is locked by another run        -> retried like 3 (each command waits
                                                   MEDALLION_LOCK_TIMEOUT, default 60 s,
                                                   for the lock first)
    A plain BashOperator retries every failure; ``MedallionOperator`` below is a
    BashOperator whose subprocess hook turns exit codes 1 and 2 into
    ``AirflowFailException`` (fail without retry). Any other failure — exit 3 or 5, a signal,
    an ``execution_timeout`` — is retried. To retry everything, use ``BashOperator`` instead.
    (``medallion run`` retries transient failures itself; these tasks call the stages one by
    one and leave the retries to Airflow.)

Tested by ``scripts/airflow_test.sh`` with a real Airflow (``airflow dags test``).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

import os
import re

import pendulum
from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, task

try:  # Airflow >= 3.1
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable
except ImportError:  # Airflow 3.0
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable
try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - older task SDK
    from airflow.exceptions import AirflowFailException

# Exit codes of `medallion` (a contract with schedulers, see the README).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_NOTHING_TO_DO = 4
EXIT_LOCKED = 5  # retried, like EXIT_UNAVAILABLE
NO_RETRY_EXIT_CODES = (EXIT_FAILED, EXIT_USAGE)

# The binary, resolved by the task's shell when it runs (so the worker's environment counts,
# not the DAG processor's).
MEDALLION = '"${MEDALLION_BIN:-medallion}"'

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
}


class _FailFastSubprocessHook(SubprocessHook):
    """Fails the task without retries when the binary says retrying cannot help."""

    def run_command(self, *args, **kwargs):
        result = super().run_command(*args, **kwargs)
        if result.exit_code in NO_RETRY_EXIT_CODES:
            kind = "the run failed" if result.exit_code == EXIT_FAILED else "bad command line or configuration"
            raise AirflowFailException(
                f"medallion exited with code {result.exit_code} ({kind}); not retried: "
                f"see the task log, fix the cause and clear the task"
            )
        return result


class MedallionOperator(BashOperator):
    """A BashOperator for `medallion`: exit 4 skips, exits 1 and 2 fail without retry."""

    def __init__(self, **kwargs):
        kwargs.setdefault("skip_on_exit_code", EXIT_NOTHING_TO_DO)
        # Pass the worker's whole environment (MEDALLION_*, AWS_*, PATH) to the binary.
        kwargs.setdefault("env", {})
        kwargs.setdefault("append_env", True)
        super().__init__(**kwargs)

    @cached_property
    def subprocess_hook(self):
        return _FailFastSubprocessHook()


def medallion_task(task_id: str, args: str, **kwargs) -> MedallionOperator:
    # `exec`: the binary replaces the shell, so the SIGTERM of a timeout or a kill reaches it.
    return MedallionOperator(task_id=task_id, bash_command=f"exec {MEDALLION} {args}", **kwargs)


with DAG(
    dag_id="medallion_nightly",
    description="medallion bronze >> silver >> gold for the business date that just ended",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["medallion"],
    doc_md=__doc__,
) as nightly:
    bronze = medallion_task("bronze", "run --stages bronze --date {{ ds }}")
    silver = medallion_task("silver", "run --stages silver --date {{ ds }}")
    gold = medallion_task("gold", "run --stages gold --date {{ ds }}", execution_timeout=timedelta(hours=1))
    bronze >> silver >> gold


with DAG(
    dag_id="medallion_maintain",
    description="medallion maintain: compact, vacuum and checkpoint the silver Delta tables",
    schedule=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": timedelta(hours=4)},
    tags=["medallion"],
    doc_md=__doc__,
) as maintain_dag:
    medallion_task("maintain", "maintain")


# Partner ids (CONTRACT section 1): they become command-line arguments and path components.
PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def landing_partners(landing: str, ds: str) -> list[str]:
    """The partners with at least one file for ``ds`` in a local landing zone."""
    if "://" in landing and not landing.startswith("file://"):
        raise ValueError(
            f"cannot list the partners of the landing zone {landing!r} from Airflow: "
            "give the partners as the param 'partners' or the Variable 'medallion_partners'"
        )
    root = landing.removeprefix("file://")
    found = set()
    if os.path.isdir(root):
        for partner in os.listdir(root):
            pdir = os.path.join(root, partner)
            if not PARTNER_ID.match(partner) or not os.path.isdir(pdir):
                continue
            if any(os.path.isdir(os.path.join(pdir, ds_dir, ds)) for ds_dir in os.listdir(pdir)):
                found.add(partner)
    return sorted(found)


def shard_groups(partners: list[str], shards: int) -> list[str]:
    """``shards`` comma-separated groups of the sorted partner ids, round-robin, none empty."""
    bad = [p for p in partners if not PARTNER_ID.match(p)]
    if bad:
        raise ValueError(f"invalid partner ids {bad}: ids must match {PARTNER_ID.pattern}")
    ids = sorted(set(partners))
    n = max(1, min(int(shards), len(ids)))
    return [",".join(ids[i::n]) for i in range(n)] if ids else []


with DAG(
    dag_id="medallion_sharded",
    description="medallion bronze + silver mapped over partner shards, then gold once",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "partners": Param([], type="array", description="partner ids; empty: Variable medallion_partners, else the landing zone's"),
        "shards": Param(4, type="integer", minimum=1, description="number of partner groups run side by side"),
        "engine": Param("", type="string", description="gold engine (MEDALLION_ENGINE), e.g. df://host:50050; empty: Variable medallion_engine"),
    },
    tags=["medallion"],
    doc_md=__doc__,
) as sharded:

    @task
    def plan(ds=None, params=None) -> list[str]:
        """One ``medallion run`` command per shard of the date's partners."""
        from airflow.sdk import Variable

        partners = list(params.get("partners") or [])
        if not partners:
            configured = Variable.get("medallion_partners", default="") or ""
            partners = [p.strip() for p in configured.split(",") if p.strip()]
        if not partners:
            partners = landing_partners(os.environ.get("MEDALLION_LANDING", "./landing"), ds)
        groups = shard_groups(partners, params.get("shards") or 4)
        print(f"{ds}: {len(partners)} partners in {len(groups)} shards: {groups}")
        return [f"exec {MEDALLION} run --stages bronze,silver --date {ds} --partners {g}" for g in groups]

    # The operator's defaults spelled out: a mapped operator's arguments are its partial's.
    shards = MedallionOperator.partial(
        task_id="shard", skip_on_exit_code=EXIT_NOTHING_TO_DO, env={}, append_env=True
    ).expand(bash_command=plan())
    gold_engine = MedallionOperator(
        task_id="gold",
        # The engine only when one is configured: the value stays in the environment (never in
        # the shell text), and an unset MEDALLION_ENGINE keeps the binary's default.
        bash_command=(
            '[ -z "$MEDALLION_GOLD_ENGINE" ] || export MEDALLION_ENGINE="$MEDALLION_GOLD_ENGINE"; '
            f"exec {MEDALLION} run --stages gold --date {{{{ ds }}}}"
        ),
        env={"MEDALLION_GOLD_ENGINE": "{{ params.engine or var.value.get('medallion_engine', '') }}"},
        trigger_rule="none_failed",
        execution_timeout=timedelta(hours=1),
    )
    shards >> gold_engine
