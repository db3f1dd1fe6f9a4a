"""The Wessex demo organisations' feed specs (YAML), shipped as package data."""
