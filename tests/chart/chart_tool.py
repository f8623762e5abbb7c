"""Renders, lints and validates the Helm chart for tests/chart.rs.

Run by the chart virtualenv (`.venv-tools`, made by scripts/setup.sh from
scripts/requirements-tools.txt). Reads a JSON request on stdin:

    {"chart": DIR, "kube_version": "1.30.0", "release": NAME, "namespace": NS,
     "cases": [{"name": ..., "values": {...}}, ...]}

and prints one JSON report: per case the schema verdict, `helm lint`'s
findings, the rendered manifests (parsed, with the template each came from),
NOTES.txt, and every schema violation found in the manifests.

- Rendering and linting are Helm itself (Helm 4's Go SDK in
  `helm-python-sdk`'s libhelm_c: no `helm` binary). Like `helm install`, the
  values are checked against values.schema.json before rendering.
- Built-in kinds are validated by `kubernetes-validate` in strict mode
  (unknown fields are errors) against the requested Kubernetes version.
- KEDA's ScaledObject / TriggerAuthentication and prometheus-operator's
  ServiceMonitor are custom resources that package has no schema for. They
  are validated with the `cloudcoil-models-keda` and
  `cloudcoil-models-prometheus-operator` models (generated from those
  projects' CRDs): strict types on the way in, and a field that does not
  survive the round trip through the model is an unknown field.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml


def crd_models() -> dict[tuple[str, str], Any]:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    return {
        ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): TriggerAuthentication,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
    }


def first_difference(given: Any, kept: Any, path: str = "") -> str | None:
    """Where `kept` (the model's dump) lost or changed something of `given`."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            if key not in kept:
                return f"{path}/{key}: unknown field"
            found = first_difference(value, kept[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(given, list) and isinstance(kept, list):
        if len(given) != len(kept):
            return f"{path}: {len(given)} items became {len(kept)}"
        for i, (a, b) in enumerate(zip(given, kept)):
            found = first_difference(a, b, f"{path}/{i}")
            if found:
                return found
        return None
    if given != kept:
        return f"{path}: {given!r} became {kept!r}"
    return None


def validate_custom(doc: dict, model: Any) -> list[str]:
    try:
        obj = model.model_validate_json(json.dumps(doc), strict=True)
    except Exception as e:  # pydantic.ValidationError, with every failure
        return [str(e)]
    kept = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
    found = first_difference(doc, kept)
    return [found] if found else []


def validate(doc: dict, kube_version: str, models: dict) -> list[str]:
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in models:
        return validate_custom(doc, models[key])
    try:
        kubernetes_validate.validate(doc, kube_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = "/".join(str(p) for p in e.path)
        return [f"/{where}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no schema: {e}"]
    return []


def run_case(chart: Any, request: dict, case: dict, models: dict) -> dict:
    values = case.get("values", {})
    out: dict[str, Any] = {"name": case["name"], "schema_error": None}
    lint = helm.lint(
        request["chart"],
        values,
        strict=True,
        namespace=request["namespace"],
        kube_version="v" + request["kube_version"],
    )
    out["lint_errors"] = lint.get("errors") or []
    # Severity 2 = warning, 3 = error (info, such as "icon is recommended", is fine).
    out["lint_messages"] = [m for m in lint.get("messages") or [] if m.get("severity", 0) >= 2]
    try:
        chart.validate_schema(values)
    except helm.HelmValuesError as e:
        out["schema_error"] = str(e)
        return out
    try:
        rendered = chart.render(
            values=values,
            name=request["release"],
            namespace=request["namespace"],
            is_install=True,
        )
    except helm.HelmError as e:
        out["render_error"] = str(e)
        return out
    manifests = []
    errors = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            out["notes"] = text
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            manifests.append({"template": template, "manifest": doc})
            for error in validate(doc, request["kube_version"], models):
                errors.append(f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {error}")
    out["manifests"] = manifests
    out["validation_errors"] = errors
    return out


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Every documented key of values.yaml: non-empty maps are descended."""
    if isinstance(values, dict) and values:
        paths = []
        for key, value in values.items():
            paths.extend(leaf_paths(value, f"{prefix}.{key}" if prefix else key))
        return paths
    return [prefix]


def main() -> None:
    request = json.load(sys.stdin)
    models = crd_models()
    with helm.Chart.load(request["chart"]) as chart:
        report = {
            "helm": helm.helm_sdk_version(),
            "value_paths": leaf_paths(chart.values),
            "cases": [run_case(chart, request, case, models) for case in request["cases"]],
        }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
