"""The canonical FHIR R4 record store: versioned resources, provenance, search indexes."""
