"""alseg.datasets."""
