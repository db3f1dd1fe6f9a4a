"""Feeds: registration, mapping specs, adapters (CSV, FHIR R4, HL7 v2), batches, quarantine."""
