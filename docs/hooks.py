"""MkDocs hooks of the alseg site."""
