"""Sensors that turn what happens in a sandbox into events: static command analysis, exec, resources."""
