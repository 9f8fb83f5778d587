"""The one settings tree: WATCHER_* environment variables (nested with __), secrets also from *_FILE files."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

ENV_PREFIX = "WATCHER_"
NESTED = "__"


class ArgoCDSettings(BaseModel):
    url: str = Field("", description="Argo CD server URL, e.g. https://argocd.example.com (required for run)")
    token: SecretStr | None = Field(None, description="API token of an Argo CD account (secret)")
    username: str = Field("", description="Username for a session login when no token is set")
    password: SecretStr | None = Field(None, description="Password for the session login (secret)")
    ca_bundle: Path | None = Field(None, description="PEM file of CAs to trust for the Argo CD server")
    insecure: bool = Field(False, description="Skip TLS verification (test clusters only)")
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one request to Argo CD")
    projects: list[str] = Field(default_factory=list, description="Only watch apps of these projects (JSON list)")
    selector: str = Field("", description="Label selector for the apps to watch, e.g. team=platform")
    app_namespace: str = Field("", description="Namespace of the Application objects, if not Argo CD's own")
    list_interval_seconds: float = Field(30.0, gt=0, description="Full list of apps (safety net for the stream)")
    concurrent_gets: int = Field(
        16, ge=1, le=64, description="Apps that look wrong in a list are read whole (GET) this many at a time"
    )
    stream: bool = Field(True, description="Follow /api/v1/stream/applications for near-real-time changes")

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


# What `git check-ref-format --branch` refuses, so a typo fails the start and not every fetch.
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|(//)|(@\{)|([\x00-\x20\x7f~^:?*\[\\])|([/.]$)|(\.lock$)|(/\.)|(\.lock/)")


def branch_name(name: str) -> str:
    """A branch as git names it (`refs/heads/` dropped); ValueError with the reason when git would refuse it."""
    name = name.strip().removeprefix("refs/heads/")
    if name in ("", "HEAD", "@"):
        raise ValueError(f"{name!r} is not a branch name; name the branch (HEAD is resolved from the remote)")
    if _BAD_REF.search(name):
        raise ValueError(f"{name!r} is not a valid git branch name")
    return name


class GitSettings(BaseModel):
    url: str = Field("", description="GitOps repo remote: https://, ssh://, git@host:path, git:// or a local path")
    branch: str = Field("main", description="Branch Argo CD deploys from (set WATCHER_GIT__BRANCHES for several)")
    branches: list[str] = Field(
        default_factory=list,
        description='Branches apps follow (JSON list: ["main", "release-1.x"]); the first holds the app-of-apps '
        "manifests; a revert goes to the app's branch (default: [WATCHER_GIT__BRANCH])",
    )
    clone_dir: Path = Field(Path("/var/lib/sync-watcher/repo"), description="Where the watcher keeps its clone")
    poll_interval_seconds: float = Field(60.0, gt=0, description="How often to fetch the repo")
    token: SecretStr | None = Field(None, description="HTTPS token for the remote (secret)")
    token_username: str = Field("x-access-token", description="Username sent with the HTTPS token")
    ssh_key_file: Path | None = Field(None, description="Private SSH key file for the remote")
    ssh_known_hosts_file: Path | None = Field(
        None,
        description="known_hosts file (e.g. from the chart) with your git host's key; the published keys of "
        "github.com, gitlab.com, bitbucket.org and ssh.dev.azure.com are shipped and always known",
    )
    ssh_host_key_checking: Literal["yes", "accept-new", "off"] = Field(
        "yes",
        description="yes: only known keys (the shipped forge keys, WATCHER_GIT__SSH_KNOWN_HOSTS_FILE, keys kept "
        "beside the clone); accept-new: also trust a new host on first use and keep its key (warned at every "
        "start); off: no checking (anyone on the path can pose as the remote; warned at every start)",
    )
    partial_clone: bool = Field(True, description="Clone with --filter=blob:none where the remote allows it")
    timeout_seconds: float = Field(
        120.0, gt=0, description="Deadline of one clone, fetch or push; the git process is killed past it"
    )

    @field_validator("branch")
    @classmethod
    def _branch_name(cls, v: str) -> str:
        return branch_name(v)

    @field_validator("branches")
    @classmethod
    def _branch_names(cls, v: list[str]) -> list[str]:
        names = [branch_name(b) for b in v]
        twice = sorted({b for b in names if names.count(b) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is listed twice")
        return names

    @property
    def watched_branches(self) -> tuple[str, ...]:
        """Every branch blame and reverts may use; the first is where app-of-apps manifests are read."""
        return tuple(self.branches) or (self.branch,)


class DetectionSettings(BaseModel):
    comparison_error_grace_seconds: float = Field(120.0, ge=0, description="ComparisonError must persist this long")
    degraded_grace_seconds: float = Field(120.0, ge=0, description="Degraded this long after a sync finished")
    progress_deadline_seconds: float = Field(600.0, gt=0, description="Progressing this long after a sync = stuck")
    attribution_window_seconds: float = Field(
        3600.0, gt=0, description="Degraded later than this after a deploy is not blamed on a commit"
    )
    failed_after_retries: int = Field(
        3, ge=0, description="Count a retrying sync as failed after N attempts (0: wait for Argo CD's verdict)"
    )
    # The rollout watch: resource trees of apps still Progressing after a sync, read for failing new pods.
    rollout_window_seconds: float = Field(
        900.0, ge=0, description="Read an app's resource tree this long after its sync (0: no rollout watch)"
    )
    rollout_grace_seconds: float = Field(20.0, ge=0, description="A new pod must keep failing this long")
    rollout_restarts: int = Field(2, ge=1, description="Restarts of a new pod, still not ready, that make it failing")
    rollout_interval_seconds: float = Field(10.0, gt=0, description="How often the watched apps' trees are read")
    rollout_concurrency: int = Field(4, ge=1, le=64, description="Resource-tree reads in flight at a time")
    rollout_max_apps: int = Field(50, ge=1, description="At most this many apps' trees read per round (newest first)")


class PreflightSettings(BaseModel):
    enabled: bool = Field(
        True, description="Ask Argo CD to render each new commit of the watched branches before it deploys it"
    )
    poll_interval_seconds: float = Field(
        10.0,
        gt=0,
        description="While enabled, git is fetched this often when WATCHER_GIT__POLL_INTERVAL_SECONDS is longer",
    )
    concurrency: int = Field(4, ge=1, le=32, description="Renders asked of Argo CD at a time")
    max_apps_per_commit: int = Field(
        50, ge=1, description="At most this many affected apps judged per commit (the rest are logged, not judged)"
    )
    revert_environments: list[str] = Field(
        default_factory=list,
        description='Environments where a commit Argo CD cannot render is reverted before it syncs (JSON list, "*" '
        "for all); per app: annotation sync-watcher.io/preflight-revert",
    )
    commit_status: bool = Field(True, description="Post each verdict as a commit status (needs WATCHER_FORGE__*)")
    validate_objects: bool = Field(
        True, description="Check the objects a commit changed against the cluster's API schemas (the validate extra)"
    )


class RevertSettings(BaseModel):
    mode: Literal["off", "dry-run", "push", "pull-request"] = Field(
        "dry-run", description="off, dry-run (record what it would push), push (to the branch) or pull-request"
    )
    allow: list[str] = Field(
        default_factory=lambda: ["*"], description='Apps it may revert, globs (JSON list: ["*-stg"])'
    )
    deny: list[str] = Field(default_factory=list, description="Apps it never reverts, globs (JSON list)")
    max_candidates: int = Field(3, ge=1, description="More commits than this changed the app: alert, don't revert")
    cooldown_seconds: float = Field(900.0, ge=0, description="At most one revert per app in this time")
    max_reverts_per_hour: int = Field(3, ge=1, description="More reverts than this in an hour open the circuit")
    verify_deadline_seconds: float = Field(
        600.0, gt=0, description="The app must be Synced and Healthy on the revert within this, or it is suspended"
    )
    push_retries: int = Field(3, ge=0, description="Redo the revert on the new head this often when a push is rejected")
    author_name: str = Field("sync-watcher", description="Author and committer name of revert commits")
    author_email: str = Field("sync-watcher@noreply.invalid", description="Author and committer email of reverts")
    signing_key_file: Path | None = Field(
        None, description="SSH or armored OpenPGP private key (from a Secret) that signs revert commits (git commit -S)"
    )
    branch_prefix: str = Field("sync-watcher/revert-", description="Branch name prefix in pull-request mode")
    terminate_retrying: bool = Field(
        True, description="After pushing, end Argo CD's retrying sync of the bad revision so the revert deploys"
    )
    without_auto_sync: Literal["alert", "revert"] = Field(
        "alert", description="An app without automated sync will not deploy a revert itself: alert, or revert anyway"
    )
    hold_max_seconds: float = Field(
        86400.0,
        gt=0,
        description="Argo CD may not deploy (a deny sync window, a progressive sync, no automated sync): wait at "
        "most this long for it, from the failure or the push, then alert",
    )
    fix_wait_seconds: float = Field(
        600.0, ge=0, description="A newer commit touches the failing app: wait this long for Argo CD to deploy it"
    )
    narrow: bool = Field(
        True,
        description="Several commits changed the failing app: revert only those that introduced what fails (Helm "
        "render, else the diffs)",
    )
    split: bool = Field(
        True, description="A culprit also changed healthy apps' files: revert only its changes to the failing app"
    )


class ForgeSettings(BaseModel):
    kind: Literal["github", "gitlab", ""] = Field(
        "", description="Pull-request API: github or gitlab (pull-request mode)"
    )
    api_url: str = Field("", description="API base, e.g. https://api.github.com or https://gitlab.com/api/v4")
    project: str = Field(
        "", description="owner/repo (GitHub) or group/project path (GitLab); default: from the git URL"
    )
    token: SecretStr | None = Field(None, description="API token that may open pull requests (secret)")
    web_url: str = Field("", description="Web UI base for commit links, e.g. https://github.com/org/gitops")


SEVERITIES = ("info", "warning", "critical")


class SlackRoute(BaseModel):
    """Notices of apps matching `apps` go to `channel` if at least `min_severity` ("off" mutes them)."""

    model_config = ConfigDict(extra="forbid")
    apps: str = Field("*", description="Glob over app names, e.g. *-prod")
    channel: str = Field("", description="Bot: channel name or ID; webhook: a key of webhook_urls ('' = default)")
    min_severity: Literal["info", "warning", "critical", "off"] = "info"


class SlackSettings(BaseModel):
    webhook_url: SecretStr | None = Field(None, description="Incoming-webhook URL: the default transport (secret)")
    bot_token: SecretStr | None = Field(
        None, description="Bot token (xoxb-...): threads per incident, parent updated on recovery (secret)"
    )
    channel: str = Field("", description="Default channel for the bot token, e.g. #deploys")
    webhook_urls: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='More webhooks by route channel (JSON object: {"#deploys-prod": "https://..."})',
    )
    routes: list[SlackRoute] = Field(
        default_factory=list,
        description='First route matching app and severity wins (JSON list: [{"apps": "*-prod", "channel": "#p"}])',
    )
    min_severity: Literal["info", "warning", "critical"] = Field(
        "info", description="Drop notices below this severity unless a route says otherwise"
    )
    api_url: str = Field("https://slack.com/api/", description="Slack Web API base (bot token transport)")
    argocd_ui_url: str = Field("", description="Argo CD UI base for links (default: WATCHER_ARGOCD__URL)")
    queue_size: int = Field(1000, ge=1, description="Notices waiting for delivery; more are dropped and counted")
    timeout_seconds: int = Field(10, ge=1, description="Timeout of one call to Slack")
    retries: int = Field(4, ge=0, description="Retries of a failed delivery (429 waits for Retry-After)")

    @property
    def enabled(self) -> bool:
        return self.webhook_url is not None or self.bot_token is not None


class StoreSettings(BaseModel):
    url: str = Field("sqlite:////var/lib/sync-watcher/state.db", description="SQLAlchemy URL (sqlite or postgresql)")
    timeline_retention_days: int = Field(14, ge=1, description="Observed timeline rows older than this are pruned")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return v


class LeadershipSettings(BaseModel):
    """Two replicas on one PostgreSQL store: one leads (a session-level advisory lock), the other stands by.
    With SQLite there is one replica and it always leads; these settings do nothing."""

    check_interval_seconds: float = Field(
        2.0, gt=0, description="PostgreSQL store: the leader confirms its lock, a standby tries to take it, this often"
    )
    lease_seconds: float = Field(
        10.0,
        gt=0,
        description="The leader stops acting this long after its lock was last confirmed; a new leader waits "
        "this long before it acts (the fail-over time is about this plus one check)",
    )


class HTTPSettings(BaseModel):
    host: str = Field("0.0.0.0", description="Address for /metrics, /healthz, /readyz and /api")
    port: int = Field(8000, ge=0, le=65535, description="Port for the same (0: pick a free one)")
    stuck_poll_seconds: float = Field(
        600.0, gt=0, description="/healthz fails when one poll has run longer than this (past all its deadlines)"
    )
    readiness_max_age_seconds: float = Field(
        0.0, ge=0, description="/readyz fails when a poll is older than this (0: 3x its interval)"
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token that POST /api/resume requires (secret; unset: one is generated into "
        "admin-token beside the clone)",
    )
    admin_auth: Literal["token", "none"] = Field(
        "token",
        description="token: /api/resume needs the admin token; none: anyone who reaches the port may "
        "resume (warned at every start)",
    )
    external_url: str = Field(
        "",
        description="Where people open the pages (/ui/), e.g. https://sync-watcher.example.com: Slack links "
        "each incident to its page ('': no link)",
    )

    @field_validator("external_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if v and not re.fullmatch(r"https?://[^\s/?#<>\"'|]+(/[^\s?#<>\"'|]*)?", v):
            raise ValueError("must be an http(s):// URL without query, e.g. https://sync-watcher.example.com")
        return v.rstrip("/")


class LogSettings(BaseModel):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
    format: Literal["auto", "json", "console"] = Field("auto", description="auto: JSON unless on a terminal")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="forbid")

    argocd: ArgoCDSettings = Field(default_factory=ArgoCDSettings)  # type: ignore[arg-type]
    git: GitSettings = Field(default_factory=GitSettings)  # type: ignore[arg-type]
    detection: DetectionSettings = Field(default_factory=DetectionSettings)  # type: ignore[arg-type]
    revert: RevertSettings = Field(default_factory=RevertSettings)  # type: ignore[arg-type]
    forge: ForgeSettings = Field(default_factory=ForgeSettings)  # type: ignore[arg-type]
    preflight: PreflightSettings = Field(default_factory=PreflightSettings)  # type: ignore[arg-type]
    slack: SlackSettings = Field(default_factory=SlackSettings)  # type: ignore[arg-type]
    store: StoreSettings = Field(default_factory=StoreSettings)  # type: ignore[arg-type]
    leadership: LeadershipSettings = Field(default_factory=LeadershipSettings)  # type: ignore[arg-type]
    http: HTTPSettings = Field(default_factory=HTTPSettings)  # type: ignore[arg-type]
    log: LogSettings = Field(default_factory=LogSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _login_complete(self) -> Settings:
        if self.argocd.username and self.argocd.password is None and self.argocd.token is None:
            raise ValueError("WATCHER_ARGOCD__PASSWORD: set it (or WATCHER_ARGOCD__PASSWORD_FILE) with the username")
        return self

    @model_validator(mode="after")
    def _first_branch_is_the_branch(self) -> Settings:
        git = self.git
        if git.branches and "branch" in git.model_fields_set and git.branch != git.branches[0]:
            raise ValueError(
                f"WATCHER_GIT__BRANCHES: its first branch ({git.branches[0]}) is where app-of-apps manifests are "
                f"read, but WATCHER_GIT__BRANCH says {git.branch}; unset WATCHER_GIT__BRANCH or list it first"
            )
        return self

    @model_validator(mode="after")
    def _lease_spans_checks(self) -> Settings:
        lead = self.leadership
        if lead.lease_seconds < 3 * lead.check_interval_seconds:
            raise ValueError(
                "WATCHER_LEADERSHIP__LEASE_SECONDS: at least 3x WATCHER_LEADERSHIP__CHECK_INTERVAL_SECONDS, "
                "or one slow check makes the leader step down"
            )
        return self

    @model_validator(mode="after")
    def _pull_requests_configured(self) -> Settings:
        if self.revert.mode == "pull-request" and not (self.forge.kind and self.forge.token):
            raise ValueError(
                "WATCHER_FORGE__KIND: pull-request mode needs WATCHER_FORGE__KIND (github or gitlab) and "
                "WATCHER_FORGE__TOKEN (or WATCHER_FORGE__TOKEN_FILE)"
            )
        return self

    @model_validator(mode="after")
    def _slack_routes_deliverable(self) -> Settings:
        slack = self.slack
        if slack.bot_token is not None and not slack.channel:
            raise ValueError("WATCHER_SLACK__CHANNEL: the bot token needs a default channel, e.g. #deploys")
        if slack.bot_token is None:
            for r in slack.routes:
                if r.channel and r.channel not in slack.webhook_urls:
                    raise ValueError(
                        f"WATCHER_SLACK__ROUTES: channel {r.channel!r} has no webhook; add it to "
                        "WATCHER_SLACK__WEBHOOK_URLS or set WATCHER_SLACK__BOT_TOKEN"
                    )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFileSource(settings_cls)

    def secret_values(self) -> list[str]:
        """Every configured secret, so the log redactor can scrub them wherever they appear."""
        found: list[SecretStr] = []
        for section, name in SECRET_FIELDS:
            value = getattr(getattr(self, section), name)
            found += value.values() if isinstance(value, dict) else [value] if value is not None else []
        return [v.get_secret_value() for v in found if v.get_secret_value()]


SECRET_FIELDS = {
    ("argocd", "token"),
    ("argocd", "password"),
    ("git", "token"),
    ("forge", "token"),
    ("http", "admin_token"),
    ("slack", "webhook_url"),
    ("slack", "bot_token"),
    ("slack", "webhook_urls"),
}
JSON_SECRET_FIELDS = {("slack", "webhook_urls")}


class SecretFileSource(PydanticBaseSettingsSource):
    """WATCHER_ARGOCD__TOKEN_FILE=/var/run/secrets/... reads the secret from a mounted Kubernetes secret."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for section, name in sorted(SECRET_FIELDS):
            var = f"{ENV_PREFIX}{section.upper()}{NESTED}{name.upper()}_FILE"
            path = os.environ.get(var)
            if not path:
                continue
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(f"{var}: cannot read {path} ({exc.strerror}); mount the secret there") from exc
            if (section, name) in JSON_SECRET_FIELDS:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise SettingsError(
                        f'{var}: {path} is not a JSON object; write {{"#channel": "https://..."}}'
                    ) from None
            found.setdefault(section, {})[name] = value
        return found


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line naming the variable and the fix."""


def env_name(loc: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + NESTED.join(str(p).upper() for p in loc)


def state_dir(git: GitSettings) -> Path:
    """The state volume: the directory that holds the clone (and the SQLite file, the known hosts, the token)."""
    return git.clone_dir.parent


def known_variables() -> dict[str, tuple[str, str]]:
    """Every WATCHER_* name a user may set -> (section, field); *_FILE names map to their secret's field."""
    names: dict[str, tuple[str, str]] = {}
    for section, info in Settings.model_fields.items():
        names[env_name((section,))] = (section, "")  # a whole section as one JSON object
        for name in info.annotation.model_fields:  # type: ignore[union-attr]
            names[env_name((section, name))] = (section, name)
            if (section, name) in SECRET_FIELDS:
                names[env_name((section, name)) + "_FILE"] = (section, name)
    return names


def check_environment(environ: dict[str, str]) -> None:
    """Fail on a WATCHER_* name that is no setting (a typo silently keeps the default) and on malformed JSON."""
    known = known_variables()
    for var in sorted(v for v in environ if v.upper().startswith(ENV_PREFIX)):
        if var.upper() not in known:
            close = difflib.get_close_matches(var.upper(), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "`sync-watcher settings` lists them all"
            raise SettingsError(f"{var}: not a sync-watcher setting; {hint}")
        section, name = known[var.upper()]
        if var.upper().endswith("_FILE") or not _takes_json(section, name):
            continue
        try:
            value = json.loads(environ[var])
        except ValueError as exc:
            example = _describe((section, name)) if name else "a JSON object of this section's settings"
            raise SettingsError(f"{var}: not valid JSON ({exc}); expected: {example}") from None
        if not name:
            _check_section_keys(var, section, value)


def _check_section_keys(var: str, section: str, value: object) -> None:
    """A section given whole as JSON (`WATCHER_REVERT='{"mode": "push"}'`): a misspelt key would be dropped
    silently and its default kept, so it fails the start like a misspelt variable does."""
    if not isinstance(value, dict):
        raise SettingsError(f'{var}: expected a JSON object of the {section} settings, e.g. {{"key": value}}')
    fields = list(Settings.model_fields[section].annotation.model_fields)  # type: ignore[union-attr]
    for key in value:
        if str(key).lower() not in fields:
            close = difflib.get_close_matches(str(key).lower(), fields, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"the {section} settings are: {', '.join(fields)}"
            raise SettingsError(f"{var}: {key!r} is not a setting of the {section} section; {hint}")


def _takes_json(section: str, name: str) -> bool:
    if not name:
        return True
    field = Settings.model_fields[section].annotation.model_fields[name]  # type: ignore[union-attr]
    return getattr(field.annotation, "__origin__", None) in (list, dict)


# userinfo in a URL: always hidden for http(s) (a token alone is a credential), otherwise only user:password.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@", re.IGNORECASE)


def without_credentials(text: str) -> str:
    """`https://user:token@host/x.git` -> `https://***@host/x.git`, anywhere in `text`."""

    def hide(m: re.Match[str]) -> str:
        http = m["scheme"].lower().startswith(("http://", "https://"))
        return f"{m['scheme']}***@" if http or ":" in m["userinfo"] else m[0]

    return _URL_USERINFO.sub(hide, text)


def load_settings(**overrides: Any) -> Settings:
    check_environment(dict(os.environ))
    try:
        return Settings(**overrides)
    except SourceError as exc:  # a value pydantic-settings could not parse: its message names the field
        raise SettingsError(str(exc).splitlines()[0]) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p != "__root__")
        hint = _describe(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:
            raise SettingsError(msg) from None
        raise SettingsError(f"{env_name(loc)}: {msg}" + (f" (expected: {hint})" if hint else "")) from None


def require(settings: Settings, *loc: str) -> None:
    """Fail the start when a setting a command needs is empty."""
    value: Any = settings
    for part in loc:
        value = getattr(value, part)
    if not value:
        raise SettingsError(f"{env_name(loc)}: not set (expected: {_describe(loc)})")


def _describe(loc: tuple[str | int, ...]) -> str:
    model: Any = Settings
    info: FieldInfo | None = None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        info = fields.get(str(part))
        if info is None:
            return ""
        model = info.annotation
    return info.description or "" if info else ""


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README table is checked against this."""
    rows: list[tuple[str, str, str]] = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        for name, field in model.model_fields.items():  # type: ignore[union-attr]
            default = field.get_default(call_default_factory=True)
            shown = "" if default in (None, "", [], {}) else str(default)
            meaning = field.description or ""
            if (section, name) in SECRET_FIELDS:
                meaning += f"; or a file: {env_name((section, name))}_FILE"
            rows.append((env_name((section, name)), shown, meaning))
    return rows
