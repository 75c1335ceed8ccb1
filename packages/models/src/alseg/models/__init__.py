"""alseg.models."""
