"""alseg.core."""
