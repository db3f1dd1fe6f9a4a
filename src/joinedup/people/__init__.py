"""The person index: which source records are the same person."""
