"""Egress gateway: every connection out of a sandbox is intercepted, judged and recorded."""
