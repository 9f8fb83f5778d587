"""Pure: whose fault a failed sync or render is, from Argo CD's words: the commit's content, the cluster, or unknown.

Argo CD's operation message is an envelope: gitops-engine writes one of a few fixed sentences and appends the
per-object messages after `, reason: ` joined by a bare comma (gitops-engine/pkg/sync/sync_context.go:926-935), and
the controller adds retry suffixes (controller/appcontroller.go:1682-1697). The object and its own message are in
`status.operationState.syncResult.resources[]` (sync_context.go:1786-1826, copied by controller/sync.go:449-479),
so those are classified first; the operation message and the conditions only when no resource failed.

Each row of ROWS names where Argo CD (at 37ee0097), gitops-engine or the Kubernetes API server formats the words it
matches; the research behind it, with captured examples, is the "failure messages" table (row ids like C20). Order
matters, first hit wins: a webhook that cannot be called before the missing-kind words its reason may hold, the
"error validating data" that needs the server before the one that is a schema error, a denial that mentions a
network failure before the denial itself.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from watcher.domain import Condition, ResourceResult


class FailureClass(enum.StrEnum):
    CONTENT = "content"  # the commit's manifests (or what renders them) are wrong: revertable
    CLUSTER = "cluster"  # the cluster, the network or Argo CD itself: the same commit would pass elsewhere
    UNKNOWN = "unknown"  # the words do not say: alert


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object a failure names: its kind (or the API server's plural resource name), namespace and name."""

    kind: str
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def same(self, kind: str, name: str, namespace: str = "") -> bool:
        """`Deployment` names the same kind as the API server's `deployments` (NewForbidden/NewNotFound use the
        plural resource, NewInvalid the Kind: apimachinery pkg/api/errors/errors.go:145-310)."""
        if name != self.name or (self.namespace and namespace and namespace != self.namespace):
            return False
        mine, theirs = self.kind.lower(), kind.lower()
        return mine == theirs or mine in (theirs + "s", theirs + "es") or theirs in (mine + "s", mine + "es")


@dataclass(frozen=True, slots=True)
class Row:
    id: str  # the research table's row
    cls: FailureClass
    pattern: re.Pattern[str]
    source: str  # where the words are formatted
    cause: str  # what it means, for a person; `{webhook}` and the like come from the pattern's groups


@dataclass(frozen=True, slots=True)
class Verdict:
    cls: FailureClass
    cause: str  # "the admission webhook validate.kyverno.svc is unreachable: no commit is at fault"
    row: str = ""  # the table row that matched ("" when none did)
    source: str = ""
    message: str = ""  # the words classified, envelopes stripped (shortened)
    object: ObjectRef | None = None  # the object the words are about, when known
    raw: str = ""  # the words as Argo CD wrote them (envelopes kept: `error when replacing` tells the path)

    def line(self) -> str:
        where = f"{self.object}: " if self.object else ""
        return f"{where}{self.cause}"


def _r(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


C, K, U = FailureClass.CONTENT, FailureClass.CLUSTER, FailureClass.UNKNOWN
APIMACHINERY = "apimachinery pkg/api/errors/errors.go"
NETWORK = (
    r"connect: connection refused|i/o timeout|context deadline exceeded|TLS handshake timeout|no such host|"
    r"http2: client connection lost|stream error: stream ID \d+; INTERNAL_ERROR|connection reset by peer|"
    r"unexpected EOF|Client\.Timeout exceeded"
)
ROWS: tuple[Row, ...] = (
    # -- not a failure of anything: the operation is held or busy ------------------------------------------
    Row(
        "D8",
        U,
        _r(r"Sync operation blocked by sync window"),
        "controller/sync.go:191-199",
        "the sync is held by a sync window, not failed",
    ),
    Row(
        "D9",
        U,
        _r(r"another operation is already in progress"),
        "util/argo/argo.go:41",
        "another operation is in progress",
    ),
    # -- the cluster: a webhook that cannot be called (before the missing-kind words its reason may hold) ----
    Row(
        "C20",
        K,
        _r(r'failed calling webhook "(?P<webhook>[^"]+)"(?::\s*(?P<reason>.*))?'),
        "apiserver pkg/util/webhook/error.go:34-39",
        "the admission webhook {webhook} is unreachable{detail}: no commit is at fault",
    ),
    Row(
        "C21",
        K,
        _r(r'admission webhook "(?P<webhook>[^"]+)" (?:does not support dry run|attempted to modify)'),
        "apiserver pkg/admission/plugin/webhook/errors/statuserror.go:61",
        "the admission webhook {webhook} is misconfigured: no commit is at fault",
    ),
    # A policy engine that denies because its own lookup timed out: the words are a denial, the cause is not.
    Row(
        "C19n",
        U,
        _r(r'admission webhook "(?P<webhook>[^"]+)" denied the request.*(?:' + NETWORK + ")"),
        "apiserver pkg/admission/plugin/webhook/errors/statuserror.go:29-51",
        "the admission webhook {webhook} denied the object after a network failure of its own",
    ),
    Row(
        "C8",
        K,
        _r(r"error validating data: failed to (?:check CRD|download openapi)|failed to list CRDs:"),
        "kubectl validation (needs the API server); research row C8",
        "kubectl could not reach the API server to validate: no commit is at fault",
    ),
    Row(
        "C22",
        K,
        _r(r"the server is currently unable to handle the request"),
        f"{APIMACHINERY}:481",
        "the API server is unavailable: no commit is at fault",
    ),
    Row(
        "C23",
        K,
        _r(
            r"the server was unable to return a response in the time allotted|^Timeout: |"
            r"could not be completed at this time, please try again"
        ),
        f"{APIMACHINERY}:376,406,484",
        "the API server timed out: no commit is at fault",
    ),
    Row(
        "C24",
        K,
        _r(
            r"the server has received too many requests|Too many requests: |"
            r"the server has asked for the client to provide credentials|\bUnauthorized\b|x509: "
        ),
        f"{APIMACHINERY}:195-198,421,456,487",
        "the API server throttled or refused Argo CD's credentials: no commit is at fault",
    ),
    Row(
        "C26", K, _r(r"etcdserver: "), "etcd client errors through the API server", "etcd failed: no commit is at fault"
    ),
    Row(
        "B13",
        K,
        _r(
            r"code = Unavailable desc|transport: Error while dialing|failed to connect to repo server|"
            r"lookup argocd-(?:redis|repo-server)"
        ),
        "controller/state.go:191,316 (gRPC transport)",
        "an Argo CD component (repo server, redis) is unreachable: no commit is at fault",
    ),
    Row(
        "B14",
        K,
        _r(r"code = DeadlineExceeded desc|` failed (?:fatal )?timeout after"),
        "util/exec/exec.go:249,260 (gRPC deadline)",
        "manifest generation timed out: no commit is at fault",
    ),
    Row("C25", K, _r(NETWORK), "Go net/http, client-go", "the network to the cluster failed: no commit is at fault"),
    Row(
        "C27",
        K,
        _r(r"the object has been modified; please apply your changes to the latest version"),
        f"{APIMACHINERY}:242",
        "another writer changed the object at the same time (a conflict)",
    ),
    Row(
        "C13",
        K,
        _r(r"because it is being terminated"),
        "apiserver pkg/admission/plugin/namespace/lifecycle/admission.go:179",
        "the namespace is being deleted: no commit is at fault",
    ),
    Row(
        "C17",
        K,
        _r(r'is forbidden: User "(?P<user>system:(?:serviceaccount:[^"]+|anonymous))" cannot'),
        "apiserver pkg/endpoints/handlers/responsewriters/errors.go:76,79",
        "Argo CD's service account {user} may not write it (Kubernetes RBAC): no commit is at fault",
    ),
    Row(
        "C18",
        K,
        _r(
            r"failed to load initial state of resource|failed to sync cluster|"
            r"error synchronizing cache state|failed to get cluster info for"
        ),
        "gitops-engine/pkg/cache/cluster.go:779,1218,1227",
        "Argo CD cannot read the cluster: no commit is at fault",
    ),
    Row(
        "D5",
        K,
        _r(r"desc = permission denied"),
        "util/rbac/rbac.go:351-353",
        "Argo CD's own RBAC refused: no commit is at fault",
    ),
    Row(
        "D6",
        K,
        _r(
            r"Failed to load application project: |Failed to get destination cluster: |"
            r"no matching service account found|failed to derive service account|"
            r"failed to initialize sync context: |Failed to load resource overrides: |"
            r"failed to load openAPISchema: "
        ),
        "controller/sync.go:244,266,311,344,360,427",
        "Argo CD's configuration is broken: no commit is at fault",
    ),
    Row(
        "D7",
        K,
        _r(
            r"failed to get cluster version for cluster|error getting openapi resources: |"
            r"failed to discover server resources, zero resources returned"
        ),
        "controller/state.go:184,310",
        "Argo CD cannot discover the cluster's API: no commit is at fault",
    ),
    Row(
        "B11",
        K,
        _r(
            r"authentication required|repository not found|ssh: handshake failed|knownhosts: key is unknown|"
            r"could not read Username|Failed to fetch (?:revision |default)|"
            r"Failed to initialize git repo|failed to list refs|git cmd = '[^']*': exit status 128"
        ),
        "reposerver/repository/repository.go:3048-3096 (git fetch)",
        "Argo CD cannot read the git repository (credentials or network): no commit is at fault",
    ),
    Row(
        "B3",
        K,
        _r(
            r"is not a valid chart repository or cannot be reached|could not download|failed to fetch chart|"
            r"failed to pull OCI chart|failed to login to registry"
        ),
        "util/helm/cmd.go:147,229,304,346",
        "Argo CD cannot reach the Helm repository: no commit is at fault",
    ),
    Row(
        "B15",
        K,
        _r(r"repository not accessible: |Unable to get repository: |Unable to get cluster: "),
        "util/argo/argo.go:372,472,851",
        "Argo CD's repository or cluster settings are broken",
    ),
    Row(
        "C16",
        K,
        _r(r"insufficient quota to consume|status unknown for quota"),
        "apiserver pkg/admission/plugin/resourcequota/controller.go:474,580",
        "the quota controller failed",
    ),
    # A quota is the environment's unless the object alone asks for more than the whole quota (see quota_class).
    Row(
        "C14",
        K,
        _r(
            r"exceeded quota: (?P<quota>[^,]+), requested: (?P<req>.*?), used: (?P<used>.*?), "
            r"limited: (?P<lim>[^\s\"]+(?:,[^\s\"]+)*)"
        ),
        "apiserver pkg/admission/plugin/resourcequota/controller.go:621-626",
        "the namespace quota {quota} is full: no commit is at fault",
    ),
    Row(
        "D4",
        K,
        _r(r'for \w+ "[^"]+" is not managed|can not be managed when in namespaced mode'),
        "gitops-engine/pkg/cache/cluster.go:1561-1563",
        "Argo CD's cluster secret does not manage that namespace",
    ),
    # -- project restrictions on an object the manifests hold: a verdict on the content (research §3.2) -----
    Row(
        "D1",
        C,
        _r(r"resource (?P<gk>[^\s:]*:\w+) is not permitted in project (?P<project>\S+)"),
        "controller/sync.go:760-761",
        "the project {project} does not permit {gk}",
    ),
    Row(
        "D2",
        C,
        _r(r"namespace (?P<ns>\S+) is not permitted in project '(?P<project>[^']+)'"),
        "controller/sync.go:769-770",
        "the project {project} does not permit namespace {ns}",
    ),
    Row(
        "B16",
        K,
        _r(
            r"application repo .* is not permitted in project|do not match any of the allowed destinations|"
            r"is not permitted to use project"
        ),
        "util/argo/argo.go:687,700,726,1286",
        "the Application's project does not permit it (Argo CD configuration)",
    ),
    Row(
        "C19",
        C,
        _r(r'admission webhook "(?P<webhook>[^"]+)" denied the request(?::\s*(?P<reason>.*))?'),
        "apiserver pkg/admission/plugin/webhook/errors/statuserror.go:29-51",
        "the admission webhook {webhook} denied it{detail}",
    ),
    Row(
        "C15",
        C,
        _r(r"is forbidden: failed quota: [^:]+: must specify"),
        "apiserver pkg/admission/plugin/resourcequota/controller.go:471",
        "the namespace quota requires limits the object does not set",
    ),
    # -- the API server refused the object itself ------------------------------------------------------------
    Row(
        "SSA",
        C,
        _r(r"failed to create typed patch object|duplicate entries for key"),
        "structured-merge-diff through server-side apply (gitops-engine pkg/sync/sync_context.go:1447)",
        "server-side apply refused the object",
    ),
    Row(
        "C2",
        C,
        _r(r"field is immutable"),
        "apimachinery pkg/api/validation/objectmeta.go:37",
        "the API server refused a change to an immutable field",
    ),
    Row(
        "C5",
        C,
        _r(r'in version "[^"]+" cannot be handled as a '),
        "apiserver pkg/endpoints/handlers/rest.go:252",
        "the API server could not decode the object",
    ),
    Row(
        "C6",
        C,
        _r(r'strict decoding error|unknown field "|field not declared in schema'),
        "apimachinery pkg/runtime/error.go:140",
        "the object has a field its kind does not have",
    ),
    Row(
        "C7",
        C,
        _r(r"error validating data: ValidationError\(|missing required field|invalid type for "),
        "kubectl validation (cleaned by gitops-engine/pkg/utils/kube/kube.go:222-240)",
        "the object does not match its kind's schema",
    ),
    Row("C1", C, _r(r'"[^"]*" is invalid: '), f"{APIMACHINERY}:284-310", "the API server refused the object"),
    Row(
        "C11",
        C,
        _r(r'no matches for kind "(?P<kind>\w+)"'),
        "apimachinery pkg/api/meta/errors.go:114-118",
        "the kind {kind} does not exist in the cluster (a missing CRD)",
    ),
    Row(
        "C9",
        C,
        _r(r"the server could not find the requested resource|The Kubernetes API could not find"),
        f"{APIMACHINERY}:450; rewritten by util/argo/argo.go:45-54",
        "the kind does not exist in the cluster (a missing CRD or API version)",
    ),
    Row(
        "C10",
        C,
        _r(
            r'failed to discover server resources for group version|\.[\w.-]+ "" not found|'
            r'is not supported on resources of kind "'
        ),
        "gitops-engine/pkg/utils/kube/kube.go:204-216",
        "the kind does not exist in the cluster",
    ),
    Row(
        "C12",
        C,
        _r(r'namespaces "(?P<ns>[^"]+)" not found'),
        "apiserver pkg/admission/plugin/namespace/lifecycle/admission.go:162-165",
        "the namespace {ns} does not exist",
    ),
    Row(
        "B19",
        C,
        _r(r"Shared resource found|is part of applications"),
        "controller/sync.go:226-227",
        "two Applications render the same object",
    ),
    # -- manifest generation: the repo's content does not render ----------------------------------------------
    Row(
        "B1",
        C,
        _r(r"Error: template: |\btemplate: [\w./-]+:\d+|executing \"[^\"]+\" at <"),
        "util/exec/exec.go:111-117 via util/helm/cmd.go:86-89",
        "the Helm templates do not render",
    ),
    Row(
        "B2",
        C,
        _r(
            r"YAML parse error on|Error: execution error at \(|parse error at \(|"
            r"values don't meet the specifications of the schema"
        ),
        "helm (through util/exec/exec.go)",
        "the Helm chart does not render",
    ),
    Row(
        "B4",
        C,
        _r(
            r"accumulating resources|must resolve to a file|invalid Kustomization|no matches for Id|"
            r"already registered id|`kustomize build"
        ),
        "util/kustomize/kustomize.go:394",
        "the Kustomization does not build",
    ),
    Row(
        "B6",
        C,
        _r(r"kustomization file not found in the path|app path does not exist"),
        "util/kustomize/kustomize.go:287; util/app/path/path.go:15",
        "the app's path is not in the repo",
    ),
    Row(
        "B7",
        C,
        _r(
            r"failed to (?:unmarshal|parse)|error converting YAML to JSON|Object '(?:Kind|apiVersion)' is "
            r"missing in|Found multiple objects in|Failed to evaluate jsonnet"
        ),
        "gitops-engine/pkg/utils/kube/kube.go:357,379; reposerver/repository/repository.go:2021-2122",
        "the manifests are not valid YAML or JSON",
    ),
    Row(
        "B7v",
        C,
        _r(r"open [^:\s]+: no such file or directory|chart \"[^\"]+\" version \"[^\"]+\" not found"),
        "helm (a value file or chart version the commit names does not exist)",
        "a file or chart is missing",
    ),
    Row("B17", C, _r(r"Namespace for .* is missing\."), "controller/state.go:1066", "an object lacks its namespace"),
    Row(
        "B18",
        C,
        _r(r"auto-sync will wipe out all resources"),
        "controller/appcontroller.go:2639-2641",
        "the commit renders no objects at all",
    ),
    # -- the words do not say whose fault it is -----------------------------------------------------------------
    Row(
        "B12",
        U,
        _r(r"unable to resolve .* to a commit SHA|unable to resolve git revision|Failed to checkout revision"),
        "reposerver/repository/repository.go:3108,3236,3308",
        "the Application's targetRevision does not resolve",
    ),
    Row(
        "C28",
        U,
        _r(r"Apply failed with \d+ conflicts?"),
        "apiserver pkg/util/managedfields/internal/conflict.go:47",
        "another field manager owns the fields",
    ),
    Row("C29", U, _r(r'" already exists'), f"{APIMACHINERY}:170", "the object already exists"),
    Row(
        "C33",
        U,
        _r(r"is missing, it might have been deleted"),
        "gitops-engine/pkg/sync/sync_context.go:609",
        "the object went missing during the sync",
    ),
    Row(
        "C34",
        K,
        _r(
            r"Failed to get live resource|failed to get resource health|Failed to get hook health|"
            r"ailed to remove hook finalizer|failed to delete resource|Failed to delete: "
        ),
        "gitops-engine/pkg/sync/sync_context.go:567-921",
        "Argo CD could not read or delete a resource",
    ),
    Row(
        "A8",
        U,
        _r(r"operation is terminating due to timeout|triggered by controller sync timeout"),
        "controller/appcontroller.go:1604-1605,1693",
        "the sync timed out",
    ),
    Row("C36", U, _r(r"SyncWaveHook failed"), "gitops-engine/pkg/sync/sync_context.go:695", "a sync wave hook failed"),
)

# Envelopes and decorations around the words that matter (research §1; anchored, stripped repeatedly). The
# `, triggered by controller sync timeout` suffix (appcontroller.go:1692-1693) stays: it is row A8's words.
DECORATIONS = re.compile(
    r"(?:\.\s*Retrying attempt #\d+ at [^.]*\.?| \(retried \d+ times\)\.?| \(failed to retry: .*\))\s*$"
)
ENVELOPES = re.compile(
    r"^(?:Failed (?:last )?sync attempt to [^:]*: |(?:ComparisonError|InvalidSpecError|SyncError): |"
    r"Failed to load (?:target|live) state: |failed to generate manifest for source \d+ of \d+: |"
    r"rpc error: code = (?:Unknown|Internal|InvalidArgument|FailedPrecondition|NotFound) desc = |"
    r"Manifest generation error \(cached\): |one or more objects failed to apply(?: \(dry run\))?(?:, reason: )?|"
    r"one or more synchronization tasks (?:are not valid|completed unsuccessfully)(?::|, reason:)? ?|"
    r"error when (?:replacing|creating|updating|patching|applying patch) \"[^\"]*\": |error when updating: |"
    r"error running kubectl auth reconcile: |Internal error occurred: )"
)
INTERNAL = "Internal error occurred: "
ERROR_CONDITIONS = frozenset({"ComparisonError", "InvalidSpecError", "SyncError"})
TEXT_KEPT = 300


def strip(message: str) -> str:
    """The words inside Argo CD's envelopes (retry suffixes, "failed to apply, reason:", gRPC prefixes)."""
    text = message.strip()
    while True:
        shorter = DECORATIONS.sub("", ENVELOPES.sub("", text, count=1)).strip()
        if shorter == text:
            return text
        text = shorter


def classify_message(message: str, obj: ObjectRef | None = None) -> Verdict:
    """One message: the first row that matches, or UNKNOWN (a bare `Internal error occurred` leans CLUSTER)."""
    text = strip(message)
    for row in ROWS:
        m = row.pattern.search(text)
        if m is None:
            continue
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        cls = quota_class(groups) if row.id == "C14" else row.cls
        cause = row.cause if cls is row.cls else "the object alone asks for more than the quota {quota} allows"
        groups["detail"] = f" ({groups['reason'][:160]})" if groups.get("reason") else ""
        named = obj or _named(text)
        return Verdict(cls, _fill(cause, groups), row.id, row.source, text[:TEXT_KEPT], named, message[:TEXT_KEPT])
    if INTERNAL in message:
        return Verdict(
            K, "the API server failed internally", "A1", APIMACHINERY + ":387-398", text[:TEXT_KEPT], obj, message
        )
    if not text:
        return Verdict(U, "Argo CD gave no reason", message=message[:TEXT_KEPT], object=obj, raw=message[:TEXT_KEPT])
    named = obj or _named(text)
    return Verdict(U, "the message matches no known failure", message=text[:TEXT_KEPT], object=named, raw=message)


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: groups.get(m[1], m[0]), template)


@dataclass(frozen=True, slots=True)
class Failure:
    """What Argo CD says failed: the verdict over all of it, and each failed object's own verdict."""

    cls: FailureClass
    cause: str
    verdicts: tuple[Verdict, ...] = ()

    @property
    def objects(self) -> tuple[ObjectRef, ...]:
        return tuple(dict.fromkeys(v.object for v in self.verdicts if v.object is not None))

    def evidence(self) -> dict[str, object]:
        return {
            "class": self.cls.value,
            "cause": self.cause,
            "objects": [str(o) for o in self.objects],
            "verdicts": [
                {
                    "class": v.cls.value,
                    "row": v.row,
                    "source": v.source,
                    "object": str(v.object or ""),
                    "text": v.message,
                }
                for v in self.verdicts
            ],
        }


def classify(
    operation_message: str, conditions: Iterable[Condition] = (), resources: Sequence[ResourceResult] = ()
) -> Failure:
    """A failed sync (`resources`: the failed `syncResult.resources[]`) or render (the app's conditions).

    Per-object results come first: the operation message joins them with bare commas and cannot be split. Any
    cluster verdict wins (a cluster fault can hide content errors behind it), then any content verdict; a failure
    with nothing but unknown words is unknown."""
    verdicts = [classify_message(r.message, ObjectRef(r.kind, r.name, r.namespace)) for r in resources]
    if not verdicts:
        texts = [operation_message] if operation_message.strip() else []
        texts += [c.message for c in conditions if c.type in ERROR_CONDITIONS and c.message]
        verdicts = [classify_message(t) for t in texts]
    if not verdicts:
        return Failure(U, "Argo CD said nothing about what failed")
    for cls in (K, C):
        first = next((v for v in verdicts if v.cls is cls), None)
        if first is not None:
            return Failure(cls, first.line(), tuple(verdicts))
    return Failure(U, verdicts[0].line(), tuple(verdicts))


# Objects the words name when no resource result does (research §4.5).
NAMED = (
    re.compile(r'(?P<kind>\w+)(?:\.[a-z0-9.-]+)? "(?P<name>[^"]+)" is (?:invalid|forbidden)'),
    re.compile(r'Operation cannot be fulfilled on (?P<kind>[\w.]+?)(?:\.[a-z0-9.-]+)? "(?P<name>[^"]+)"'),
    re.compile(r"for resource (?P<kind>\w+)/(?P<name>[^:\s]+):"),
    re.compile(
        r"could not find (?:version \"[^\"]+\" of )?[^/\s]*/(?P<kind>\w+) for requested resource "
        r"(?P<ns>[^/\s]*)/(?P<name>[^\s.]+(?:\.[^\s.]+)*)\."
    ),
    re.compile(r"Resource [^/\s]*/(?P<kind>\w+)/(?P<name>\S+) is missing"),
    re.compile(r'namespace "(?P<ns>[^"]+)" for (?P<kind>\w+) "(?P<name>[^"]+)" is not managed'),
)


def _named(text: str) -> ObjectRef | None:
    for pattern in NAMED:
        m = pattern.search(text)
        if m is not None:
            g = m.groupdict()
            return ObjectRef(g["kind"], g["name"], g.get("ns") or "")
    return None


# -- quotas: the environment's, unless the object alone can never fit (research §3.1) ------------------------
QUANTITY = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>m|k|Ki|Mi|Gi|Ti|K|M|G|T)?$")
UNITS = {None: 1.0, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
UNITS |= {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def quota_class(groups: Mapping[str, str]) -> FailureClass:
    requested, limited = _amounts(groups.get("req", "")), _amounts(groups.get("lim", ""))
    over = any(name in limited and amount > limited[name] for name, amount in requested.items())
    return C if over else K


def _amounts(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, qty = part.strip().partition("=")
        m = QUANTITY.match(qty.strip())
        if name and m:
            out[name.strip()] = float(m["n"]) * UNITS[m["unit"]]
    return out
