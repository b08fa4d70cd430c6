"""Shared event vocabulary: what happened, when, and to whom it is attributed."""

from rollcage.events.model import Attribution, Event
from rollcage.events.sinks import EventSink, Fanout, JsonlSink
from rollcage.events.store import EventStore

__all__ = ["Attribution", "Event", "EventSink", "EventStore", "Fanout", "JsonlSink"]
