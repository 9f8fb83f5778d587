"""Schemas for the objects a render produced: Kubernetes' own kinds strictly at the cluster's version
(`kubernetes-validate`, loaded only when first used), custom resources against the CRDs rendered beside them.

A kind with no schema is skipped (core.preflight.Problems(None)), never an alarm; without the `validate`
extra installed every object is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from watcher.core.preflight import Problems, Validate, no_schemas

CRD_KIND = "CustomResourceDefinition"


def validator_for(version: str | None, rendered: Sequence[Mapping[str, Any]] = ()) -> Validate:
    """A Validate for objects deployed to a cluster at `version` (None: the newest schemas the library has)."""
    try:
        import kubernetes_validate  # ~30 MB of schemas on disk, read per kind when asked
    except ImportError:
        return no_schemas
    crds = _crd_schemas(rendered)

    def validate(obj: Mapping[str, Any]) -> Problems:
        api, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        custom = crds.get((api, kind))
        if custom is not None:
            return _against(custom, obj)
        wanted = version or kubernetes_validate.latest_version()
        try:
            kubernetes_validate.validate(dict(obj), wanted, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return Problems(None)
        except kubernetes_validate.utils.VersionNotSupportedError:
            return validate_at_latest(obj)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(root)"
            return Problems("builtin", (f"{where}: {exc.message}",))
        return Problems("builtin")

    def validate_at_latest(obj: Mapping[str, Any]) -> Problems:
        try:
            kubernetes_validate.validate(dict(obj), kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            return Problems("builtin", (f"{'.'.join(str(p) for p in exc.path)}: {exc.message}",))
        except Exception:  # noqa: BLE001 - no schema at all for this kind: skipped
            return Problems(None)
        return Problems("builtin")

    return validate


def _crd_schemas(rendered: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of each CRD version the render itself carries."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for obj in rendered:
        if obj.get("kind") != CRD_KIND:
            continue
        spec = obj.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            schema = ((v or {}).get("schema") or {}).get("openAPIV3Schema")
            if kind and schema:
                found[(f"{spec.get('group')}/{v.get('name')}", str(kind))] = schema
    return found


def _against(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> Problems:
    import jsonschema  # installed with kubernetes-validate

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(dict(obj)), key=lambda e: list(e.path))
    return Problems("custom", tuple(f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors))
