"""Logging that a run cannot turn into a flood: one kind of message (its format string, from
one logger) is written at most REPEATS times by a handler, then once more to say that the
rest are not (they are counted where they matter: packets.jsonl, events.jsonl)."""

import logging

REPEATS = 100


class RepeatLimit(logging.Filter):
    def __init__(self, repeats: int = REPEATS):
        super().__init__()
        self.repeats = repeats
        self.seen = {}

    def filter(self, rec: logging.LogRecord) -> bool:
        # Handlers share the record: the first one to see it keeps its kind.
        if not hasattr(rec, "tansiv_kind"):
            rec.tansiv_kind = (rec.name, rec.msg)
        n = self.seen[rec.tansiv_kind] = self.seen.get(rec.tansiv_kind, 0) + 1
        if n == self.repeats + 1 and not getattr(rec, "tansiv_last", False):
            rec.tansiv_last = True
            rec.msg = f"{rec.msg} [said {self.repeats} times: no more of these are written]"
        return n <= self.repeats + 1
