"""HTTP: the partner FHIR API (/fhir), the admin API (/admin) and public discovery routes."""
