"""`sync-watcher`: run | demo | simulate | check | status | incidents | explain | resume | settings."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx
from tabulate import tabulate

from watcher import __version__
from watcher.logs import configure
from watcher.settings import (
    Settings,
    SettingsError,
    load_settings,
    require,
    settings_table,
    state_dir,
    without_credentials,
)
from watcher.sim.gitops_repo import DEMO_APPS

DEFAULT_API = "http://127.0.0.1:8000"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sync-watcher")
def main() -> None:
    """Watch Argo CD and a GitOps repo; detect failing syncs and the commit that caused them.

    Settings come from WATCHER_* environment variables (see `sync-watcher settings`).
    """


@main.command()
@click.option(
    "--once",
    is_flag=True,
    help="One git poll, one Argo CD poll and one reverter pass (in the configured revert mode), "
    "a line for each, then exit (1 if a poll failed).",
)
def run(once: bool) -> None:
    """Run the daemon until SIGTERM or Ctrl-C (or one pass with --once)."""
    settings = _settings()
    try:
        require(settings, "argocd", "url")
        require(settings, "git", "url")
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure(settings.log.level, settings.log.format, settings.secret_values())
    from watcher.run.daemon import Daemon

    if once:
        summary = Daemon(settings).run_once()
        click.echo("\n".join(summary.lines()))
        sys.exit(1 if summary.failed else 0)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        daemon = Daemon(settings)
        daemon.start()  # the HTTP port binds first: a port in use is one line, before anything else starts
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    stop.wait()
    daemon.stop()


@main.command()
def check() -> None:
    """Validate settings and reach Argo CD and git: one line per check, exit 1 if any fails."""
    from watcher.adapters.argocd import ArgoCDClient, ArgoCDError
    from watcher.adapters.gitrepo import GitError, GitRepo

    configure("error", "console")
    failed = False

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failed
        failed |= not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'} {what:<9} {detail}")

    try:
        settings = load_settings()
        require(settings, "argocd", "url")
        require(settings, "git", "url")
    except SettingsError as exc:
        line(False, "settings", str(exc))
        sys.exit(1)
    line(True, "settings", "all WATCHER_* settings valid")
    argocd_url, git_url = without_credentials(settings.argocd.url), without_credentials(settings.git.url)
    client = ArgoCDClient(settings.argocd, retry_attempts=1)
    try:
        version = client.version().get("Version", "?")
        apps = client.list_apps()
        line(True, "argocd", f"{argocd_url} (Argo CD {version}), {len(apps)} apps visible")
    except ArgoCDError as exc:
        line(False, "argocd", f"{argocd_url}: {without_credentials(str(exc))}")
    finally:
        client.close()
    # A clone of its own: the daemon's clone belongs to the daemon, and `check` may be run with another URL.
    scratch = tempfile.TemporaryDirectory(prefix="sync-watcher-check-")
    known = settings.git.ssh_known_hosts_file or state_dir(settings.git) / "known_hosts"
    own = {"clone_dir": Path(scratch.name) / "repo"}
    if known.exists() and settings.git.ssh_host_key_checking != "off":
        own["ssh_known_hosts_file"] = known  # the daemon's known hosts are read, never written
    try:
        repo = GitRepo(settings.git.model_copy(update=own), settings.revert)
        remote = repo.branch_heads()
        heads = ", ".join(f"{branch} at {sha[:12]}" for branch, sha in remote.heads.items())
        default = remote.default or f"unknown (HEAD taken as {repo.branches[0]})"
        line(True, "git", f"{git_url}: {heads}; the remote's default branch: {default}")
        for host, fingerprint in repo.trusted:  # compare with the fingerprints the git host publishes
            line(True, "host key", f"{host} {fingerprint} would be trusted on first use (check keeps nothing)")
    except GitError as exc:
        line(False, "git", f"{git_url}: {without_credentials(str(exc))}")
    finally:
        scratch.cleanup()
    sys.exit(1 if failed else 0)


def _request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One call to a running watcher; unreachable becomes a one-line error that says what to check."""
    try:
        return httpx.request(method, url, timeout=5, **kwargs)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}; is `sync-watcher run` up? (--url)") from None


def _get(url: str) -> Any:
    r = _request("GET", url)
    if r.is_error:
        raise click.ClickException(f"cannot read {url}: HTTP {r.status_code}; is `sync-watcher run` up? (--url)")
    return r.json()


@main.command()
@click.option("--url", default=DEFAULT_API, show_default=True, help="The running watcher's HTTP address.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status(url: str, as_json: bool) -> None:
    """Table of watched apps from a running daemon."""
    apps = _get(url.rstrip("/") + "/api/apps")["apps"]
    if as_json:
        click.echo(json.dumps(apps, indent=2))
        return
    rows = [
        [
            a.get("app") or a["name"],
            a["sync_status"],
            a["health"],
            a["operation_phase"],
            (a["sync_revision"] or "")[:10],
            ",".join(a["open_incidents"]) or "-",
        ]
        for a in apps
    ]
    click.echo(tabulate(rows, headers=["APP", "SYNC", "HEALTH", "OPERATION", "REVISION", "OPEN INCIDENTS"]))


@main.command()
@click.option("--url", default=DEFAULT_API, show_default=True, help="The running watcher's HTTP address.")
@click.option("--open", "open_only", is_flag=True, help="Only incidents not yet recovered.")
@click.option("--before", type=click.IntRange(min=1), help="Only incidents older than this id (the next page).")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True, help="Incidents per page.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def incidents(url: str, open_only: bool, before: int | None, limit: int, as_json: bool) -> None:
    """Incidents with their culprit revision and evidence, newest first, a page at a time."""
    query = f"?limit={limit}" + ("&open=1" if open_only else "") + (f"&before={before}" if before else "")
    answer = _get(url.rstrip("/") + "/api/incidents" + query)
    rows, more = answer["incidents"], answer.get("next_before")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [
        [
            i["id"],
            i["app"],
            i["kind"],
            (i["revision"] or "")[:10],
            i["detected_at"][:19],
            (i["resolved_at"] or ("NEEDS A HUMAN" if i.get("needs_human") else "open"))[:19],
            _decided(i),
        ]
        for i in rows
    ]
    click.echo(tabulate(table, headers=["ID", "APP", "KIND", "REVISION", "DETECTED", "RESOLVED", "DECISION"]))
    if more:  # a long history is never cut silently
        click.echo(f"more: sync-watcher incidents --before {more}" + (f" --limit {limit}" if limit != 100 else ""))


def _decided(incident: dict[str, Any]) -> str:
    decisions = incident.get("decisions") or []
    if not decisions:
        return "-"
    d = decisions[0]
    reverts = incident.get("reverts") or []
    outcome = f" -> {reverts[0]['state']}" if reverts else ""
    return f"{d['action']} ({d['rule']}){outcome}"


@main.command()
@click.argument("app")
@click.option("--url", default=DEFAULT_API, show_default=True, help="The running watcher's HTTP address.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def explain(app: str, url: str, as_json: bool) -> None:
    """Why the last auto-revert decision for APP was taken: what was seen, the rule, the outcome."""
    r = _request("GET", url.rstrip("/") + "/api/explain", params={"app": app})
    if r.status_code == 404:
        raise click.ClickException(f"no decision or pre-flight verdict recorded for {app}: it has had no incident")
    data = r.json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if data.get("decision") is None:
        click.echo("\n".join([f"{app}: no auto-revert decision", *_preflight_lines(data.get("preflight"))]))
        return
    d, incident = data["decision"], data.get("incident") or {}
    ev = d["evidence"]
    blame = ev.get("blame") or {}
    lines = [
        f"{app}: {d['action'].upper()} ({d['rule']}) at {d['at'][:19]} in mode {d['mode']}",
        f"  why:      {d['reason']}",
        f"  do:       {data.get('what_to_do') or '-'}",
        f"  incident: #{incident.get('id')} {incident.get('kind')} at {(incident.get('revision') or '')[:12]}"
        f" ({incident.get('reason')})",
        f"  argo cd:  {json.dumps(ev.get('argocd_now'))}",
        f"  blame:    {blame.get('outcome', '-')}: last good {str(blame.get('last_good_revision'))[:12]}"
        f" ({ev.get('last_good_source') or '-'})",
    ]
    if ev.get("evidence_line"):  # what the decision rests on: the failing object and the culprit's change to it
        lines.append(f"  evidence: {ev['evidence_line']}")
    failure = ev.get("failure") or {}
    if failure:  # whose fault Argo CD's words say it is, and the table row that said so
        rows = ", ".join(sorted({v["row"] for v in failure.get("verdicts") or [] if v.get("row")})) or "none"
        lines.append(f"  failure:  {failure.get('class')} ({failure.get('cause')}; rows {rows})")
    if ev.get("follows"):  # which branch blame read and a revert goes to, and how HEAD was resolved
        targets = ", ".join(ev.get("target_revisions") or []) or "none in the repo"
        head = f"; {ev['head']}" if ev.get("head") else ""
        lines.append(f"  branch:   {ev.get('branch') or '-'} (targetRevision {targets}{head})")
    for c in blame.get("culprits") or []:
        also = f"; also changed {', '.join(c['also_touched'])}" if c.get("also_touched") else ""
        lines.append(f"  culprit:  {c['sha'][:12]} {c['author']}: {c['subject']}{also}")
    for rv in incident.get("reverts") or []:
        lines.append(
            f"  revert:   #{rv['id']} {rv['state']} {str(rv.get('revert_sha') or '')[:12]} {rv.get('url') or ''}"
            f" verify={rv.get('verify_result') or 'pending'}"
        )
        held = (rv.get("detail") or {}).get("held")
        if isinstance(held, dict) and not rv.get("verify_result"):  # Argo CD may not deploy it yet: why, until when
            lines.append(f"  held:     {held.get('text')} (verify deadline now {str(rv.get('verify_deadline'))[:19]})")
    if incident.get("resolution"):
        lines.append(f"  resolved: {incident['resolution']}")
    if data.get("suspended"):
        lines.append(f"  SUSPENDED: {data['suspended']['reason']} (sync-watcher resume {app})")
    click.echo("\n".join(lines + _preflight_lines(data.get("preflight"))))


def _preflight_lines(p: dict[str, Any] | None) -> list[str]:
    """The pre-flight's latest verdicts on the app's commits, Argo CD's words under a failing one."""
    if not p or not p.get("verdicts"):
        return []
    lines = ["  pre-flight (Argo CD's render of each new commit, before it deployed it):"]
    for v in p["verdicts"]:
        agreed = "" if v.get("agreed") is None else f"; Argo CD {'agreed' if v['agreed'] else 'DISAGREED'}"
        action = f"; {v['action']}" if v.get("action") else ""
        lines.append(f"    {v['commit'][:12]} {v['verdict']} in {v['seconds']:g}s{action}{agreed}")
        said = v.get("argocd_error") or "; ".join(v.get("invalid") or [])
        if said:
            lines.append(f"      argo cd: {said[:300]}")
    if p.get("local_checks_paused"):
        lines.append(f"    local schema checks PAUSED: {p['local_checks_paused']} (sync-watcher resume APP resets)")
    return lines


@main.command()
@click.argument("app", required=False)
@click.option("--circuit", is_flag=True, help="Also close the revert circuit opened by the rate limit.")
@click.option("--url", default=DEFAULT_API, show_default=True, help="The running watcher's HTTP address.")
def resume(app: str | None, circuit: bool, url: str) -> None:
    """Let auto-revert act on APP again (after a revert that did not heal it), and/or close the circuit."""
    if not app and not circuit:
        raise click.UsageError("name an APP, or pass --circuit, or both")
    from watcher.run.admin_token import read_token

    headers = {}
    token = read_token(_settings())  # WATCHER_HTTP__ADMIN_TOKEN(_FILE), else the one the daemon generated
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    r = _request("POST", url.rstrip("/") + "/api/resume", json={"app": app, "circuit": circuit}, headers=headers)
    if r.status_code == 401:
        raise click.ClickException(
            f"{url} wants the admin token: set WATCHER_HTTP__ADMIN_TOKEN_FILE, or run this in the watcher's pod "
            "(kubectl exec deploy/sync-watcher -- sync-watcher resume ...), where it reads the token itself"
        )
    if r.status_code != 200:
        raise click.ClickException(f"{url}: {r.json().get('error', r.text)}")
    data = r.json()
    if app:
        click.echo(f"{app}: {'resumed' if data['resumed'] else 'was not suspended'}")
    if circuit:
        click.echo(f"circuit: {'closed' if data['circuit_closed'] else 'was not open'}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the demo's files in this directory.")
@click.option(
    "--real-timings",
    is_flag=True,
    help="Run the story on Argo CD's real clock (git polled every 120-180 s, 600 s progress deadline), scaled.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=1, max=600),
    default=60.0,
    show_default=True,
    help="With --real-timings: Argo CD seconds per wall second (60: an hour of Argo CD time in a minute).",
)
def demo(as_json: bool, keep: Path | None, real_timings: bool, scale: float) -> None:
    """Show the whole loop in under a minute, on loopback, leaving nothing running."""
    from watcher.demo import render_text, run_demo
    from watcher.demo_real import render_real_text, run_real_timings_demo

    log = _settings().log
    # The timeline is the demo's output; the watcher's own log lines too when WATCHER_LOG__LEVEL asks for them.
    configure(log.level if "level" in log.model_fields_set else "warning", "console", stream=sys.stderr)
    if real_timings:
        result = run_real_timings_demo(keep, scale)
        click.echo(json.dumps(result, indent=2, default=str) if as_json else render_real_text(result))
        return
    if as_json:
        click.echo(json.dumps(run_demo(keep), indent=2, default=str))
        return

    def show(result: dict[str, Any]) -> None:
        """The story, then (on a terminal) the pages keep serving until Enter; tests and CI do not wait."""
        click.echo(render_text(result))
        if sys.stdin.isatty():
            click.echo(f"Serving {result['fleet_url']} and the incident page until you press Enter...")
            sys.stdin.readline()

    run_demo(keep, hold=show)


@main.command()
@click.option("--port", default=8080, show_default=True, help="Port of the simulated Argo CD API.")
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=Path("./sim-world"),
    show_default=True,
    help="Where the git daemon, the demo repo and a work clone live.",
)
@click.option(
    "--apps",
    type=click.IntRange(min=DEMO_APPS),
    default=DEMO_APPS,
    show_default=True,
    help=f"Applications in all: the demo's {DEMO_APPS}, and past those a fleet deploying the demo's charts "
    "(as if made with `argocd app create`), so one bad chart reaches many apps. 10000 is a big fleet.",
)
def simulate(port: int, workdir: Path, apps: int) -> None:
    """Serve a simulated Argo CD over a demo GitOps repo (served by git daemon) until Ctrl-C."""
    from shlex import quote

    from watcher.sim.controller import SimTimings
    from watcher.sim.world import SimWorld

    if workdir.exists() and any(workdir.iterdir()):
        raise click.ClickException(f"{workdir} is not empty; pick a new --dir")
    timings = SimTimings(git_poll_seconds=5, sync_seconds=1, health_seconds=2, backoff_scale=0.2, pod_scale=0.3)
    world = SimWorld.start(workdir, timings=timings, port=port, apps=apps)
    # The watcher's clone and store go inside this world's (new, empty) directory: a clone or store left by an
    # earlier world would follow that world's remote and history.
    state = workdir.resolve() / "watcher"
    click.echo(
        f"Argo CD simulator: {world.argocd_url} ({apps} apps)\nGitOps repo:       {world.repo_url}\n"
        f"Work clone:        {world.work.path}  (edit, commit, `git push origin HEAD:main`)\n\n"
        f"Watch it: WATCHER_ARGOCD__URL={world.argocd_url} WATCHER_GIT__URL={world.repo_url} "
        f"WATCHER_GIT__CLONE_DIR={quote(str(state / 'clone'))} "
        f"WATCHER_STORE__URL={quote(f'sqlite:///{state}/state.db')} sync-watcher run"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        time.sleep(0)
    world.stop()


@main.command("settings")
def settings_cmd() -> None:
    """Every setting, its default and meaning (Markdown table)."""
    rows = [[f"`{n}`", f"`{d}`" if d else "", m] for n, d, m in settings_table()]
    click.echo(tabulate(rows, headers=["Variable", "Default", "Meaning"], tablefmt="github"))
