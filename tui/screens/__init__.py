"""Modal screens: quit, confirm, help."""
