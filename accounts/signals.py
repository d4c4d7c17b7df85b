"""Audit log receivers (logins, admin saves and deletes)."""
