"""Outbound HTTP to addresses staff typed in: which addresses the server may reach."""
