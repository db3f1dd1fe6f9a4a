"""Check the generated FHIR bundles against the FHIR models.

fhir.resources 8 ships R5 as its default and R4B (4.3.0) and STU3 as
sub-packages; it has no R4 (4.0.1) models. R4B is R4 plus a few
medication-definition and evidence resources, and every resource type and
element the demo emits is unchanged between R4 and R4B, so R4B is the closest
installed check of "valid R4".
"""

from __future__ import annotations

import json
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

FHIR_MODELS = "fhir.resources.R4B (FHIR 4.3.0)"


def fhir_problems(path: Path) -> list[str]:
    """Every validation problem in one bundle file, as ``file#entry: message`` lines."""
    bundle = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    if bundle.get("resourceType") != "Bundle":
        return [f"{path.name}: not a Bundle"]
    bundle_class = get_fhir_model_class("Bundle")
    head = {k: v for k, v in bundle.items() if k != "entry"}
    try:
        bundle_class.model_validate(head)
    except ValueError as exc:
        problems.append(f"{path.name}: {exc}")
    for number, entry in enumerate(bundle.get("entry", []), start=1):
        resource = entry.get("resource", {})
        try:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        except (KeyError, ValueError) as exc:
            problems.append(f"{path.name}#{number}: {exc}")
    return problems
