"""Fingerprint and dedup: one identity per (rule, identifying labels), one candidate per identity.

The fingerprint hashes the rule id and the sorted identifying labels, so it is stable across
restarts, processes and label order. Several candidates for the same fingerprint in one window
(e.g. two rows of a table for the same segment) collapse to one: the most severe, then the one
with the condition triggered, then the most extreme value.

Example:
    >>> a = fingerprint("tti_high", {"segment_id": "S1", "district": "D1"})
    >>> a == fingerprint("tti_high", {"district": "D1", "segment_id": "S1"})
    True
    >>> a == fingerprint("tti_high", {"segment_id": "S2", "district": "D1"})
    False
    >>> len(a)
    16
"""
from __future__ import annotations

import hashlib

import msgspec

from brain.alerts.model import Candidate

#: Labels that describe rather than identify an alert (they may change while it stays the same alert).
NON_IDENTIFYING = frozenset({"severity", "summary", "sources"})


_encode = msgspec.json.Encoder().encode


def fingerprint(rule_id: str, labels: dict[str, str]) -> str:
    """16 hex digits of blake2b over the rule id and the identifying labels, sorted by name.

    The labels are hashed as their JSON encoding (one C call, and unambiguous whatever the values hold).
    """
    items = sorted((k, str(v)) for k, v in labels.items() if k not in NON_IDENTIFYING)
    return hashlib.blake2b(_encode((rule_id, items)), digest_size=8).hexdigest()


def dedup(candidates: list[Candidate]) -> list[Candidate]:
    """Fill in fingerprints and keep one candidate per fingerprint (input order of first sighting)."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        if not c.fingerprint:
            c.fingerprint = fingerprint(c.rule_id, c.labels)
        prev = best.get(c.fingerprint)
        if prev is None or _rank(c) > _rank(prev):
            best[c.fingerprint] = c
    return list(best.values())


def _rank(c: Candidate) -> tuple:
    return (-c.severity, c.trigger, abs(c.value))
