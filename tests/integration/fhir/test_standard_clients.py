"""Standard FHIR clients read our answers: the SMART ``fhirclient`` (its R4 models
validate every element they parse) and ``fhirpy`` (which follows ``next`` links),
against the real app served by uvicorn on 127.0.0.1, over the demo care system."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.condition import Condition
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient

from joinedup.api.app import create_app
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from tests.integration.fhir import test_records_api as records_api
from tests.integration.fhir.test_records_api import Demo, _other_org_patient
from tests.support import free_port, serving

demo = records_api.demo
"""The same demo care system (built once for this module)."""

PORTS = range(8110, 8120)
"""The ports this project's tests and benchmarks may listen on."""


@pytest.fixture(scope="module")
def base(demo: Demo) -> Iterator[str]:
    """The app on a real socket (lifespan off: the demo fixture owns the services)."""
    with serving(create_app(demo.svc), free_port(PORTS)) as url:
        yield f"{url}/fhir"


def _smart(base: str, headers: dict[str, str]) -> smart_client.FHIRClient:
    smart = smart_client.FHIRClient(settings={"app_id": "joinedup-test", "api_base": base})
    smart.server.session.headers.update(headers)
    return smart


def _nhs_number(resource: dict[str, object]) -> str:
    identifiers = resource["identifier"]
    assert isinstance(identifiers, list)
    return next(str(i["value"]) for i in identifiers if i["system"] == NHS_NUMBER_SYSTEM)


@pytest.mark.slow
def test_the_smart_fhirclient_reads_metadata_read_search_everything_and_history(
    demo: Demo, base: str
) -> None:
    _org, patient = _other_org_patient(demo)
    smart = _smart(base, demo.insider)
    smart.prepare()  # fetches and parses the CapabilityStatement
    capability = smart.server.capabilityStatement
    assert isinstance(capability, CapabilityStatement)
    assert capability.fhirVersion == "4.0.1"
    patient_rest = next(r for r in capability.rest[0].resource if r.type == "Patient")
    assert {i.code for i in patient_rest.interaction} >= {"read", "vread", "history-instance"}
    assert "Patient:general-practitioner" in patient_rest.searchInclude

    read = Patient.read(patient, smart.server)
    assert read.id == patient
    version = Patient.read_from(f"Patient/{patient}/_history/{read.meta.versionId}", smart.server)
    assert version.id == patient

    nhs = _nhs_number(read.as_json())
    found = next(Patient.where(
        struct={"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}"}
    ).perform_iter(smart.server))
    assert isinstance(found, Bundle)
    assert patient in {e.resource.id for e in found.entry}

    conditions = next(
        Condition.where(struct={"patient": patient}).include("subject").perform_iter(smart.server)
    )
    modes = [e.search.mode for e in conditions.entry or []]
    assert conditions.total == modes.count("match")
    assert conditions.total
    assert [e.resource.id for e in conditions.entry if e.search.mode == "include"] == [patient]

    everything = Bundle(smart.server.request_json(f"Patient/{patient}/$everything"))
    assert everything.total == len(everything.entry) > 1
    kinds = {e.resource.resource_type for e in everything.entry}
    assert "Patient" in kinds
    assert len(kinds) > 1

    history = Bundle(smart.server.request_json(f"Patient/{patient}/_history"))
    assert history.type == "history"
    assert history.entry[0].response.etag == f'W/"{read.meta.versionId}"'


@pytest.mark.slow
def test_fhirpy_reads_resources_and_follows_next_links(demo: Demo, base: str) -> None:
    _org, patient = _other_org_patient(demo)
    fhir = SyncFHIRClient(base, authorization=demo.insider["Authorization"])
    read = fhir.reference("Patient", patient).to_resource()
    assert read["id"] == patient
    assert fhir.resources("Patient").search(_id=patient).count() == 1

    everything = fhir.reference("Patient", patient).execute("$everything", method="GET")
    assert everything["resourceType"] == "Bundle"
    about = [  # patient= is about this one Patient record; $everything the whole person
        e["resource"] for e in everything["entry"]
        if e["resource"].get("subject", e["resource"].get("patient", {})).get("reference")
        == f"Patient/{patient}"
    ]
    one_type = max(
        {r["resourceType"] for r in about},
        key=lambda t: sum(r["resourceType"] == t for r in about),
    )
    want = sorted(r["id"] for r in about if r["resourceType"] == one_type)
    assert len(want) > 1
    paged = fhir.resources(one_type).search(patient=patient).limit(1)
    assert sorted(r["id"] for r in paged.fetch_all()) == want  # one page per resource
    assert paged.count() == len(want)
