"""Netlink: ``genl`` (the generic netlink socket, encoder and decoder) and one module
per family with its attribute tables (``mptcp_pm``: path manager commands and events)."""
