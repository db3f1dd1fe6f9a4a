"""Access control: agreements, consent, relationships and the decision point."""
