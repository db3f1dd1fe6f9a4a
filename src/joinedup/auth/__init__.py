"""Tokens: issuing (client credentials with private_key_jwt), verifying, signing keys."""
