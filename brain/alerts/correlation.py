"""Correlation: which real incident each active alert belongs to (``Alert.incident``).

One accident raises an incident alert, congestion on its segment and the ones feeding it, a
district roll-up and grid reports; one burst water main raises a multi-point alert, a pressure
drop, a flow spike and an outage. Subscribers want one page per real incident, with the rest as
updates in the same group, so this stage gives every active alert an *incident key* that the
grouping stage can group by (``group_by: [incident]``) and that decides what is news (a new
incident) and what is an update (more of a known one).

Links are directed: an *anchor* alert explains a *target* alert.

- every correlate rule of the packs (``correlate:``), and every inhibit rule (what inhibits an
  alert explains it): an active alert matching ``source`` anchors the alerts matching ``target``
  that share the ``equal`` labels (and lie within ``within_m`` metres, when set; or, with
  ``upstream_m``, whose segment is the anchor's or feeds it within that many metres of road:
  :class:`brain.alerts.roadgraph.RoadNetwork`, so a queue growing kilometres back along the road
  stays with its accident while the roads around it do not join; or, with ``same_zone``, whose
  sensors lie in the same metered supply zone as the anchor's: :class:`brain.alerts.supplyzones.SupplyZones`,
  so the distant flow meter that supplies a burst main's area joins the burst);
- a multi-point alert (多点触发) anchors the alerts about the sources that made it fire (its
  ``sources`` label lists them as ``feed:id``: sensor, case or incident ids).

A target joins only one anchor (the most severe, then the oldest), so an aggregate (a district
roll-up counting two unrelated accidents) never merges two incidents; anchors chain (an anchor may be another's target).
Keys flow from anchor to target, never back: an alert that is nobody's target founds an incident
(its key is its fingerprint), except a multi-point alert, which joins the incident one of its
sources already paged. Keys are *sticky*: an alert whose incident already paged (its key is held by
an active alert that is not digest-only) keeps it for the rest of its activation, so alerts never
move between notified groups. Resolved alerts keep their key, so a fault that re-fires soon after
resolving comes back into its old incident; a re-fired alert that now has an anchor (a district
roll-up lit again by a new accident) follows the anchor instead. Within the subscriptions' reopen window an
alert resolved moments ago still explains what it would explain if active: a new alert it is linked to, or
one sharing a source with it, joins its incident (a burst cluster that resolves and re-forms a tick later
around the same flow meter is the same burst, an update, not a second page).

Example:
    >>> from brain.alerts.model import Alert
    >>> rule = CorrelateRule(source=["rule=incident_active"], target=["category=traffic"], equal=["segment_id"])
    >>> inc = Alert(fingerprint="i", rule_id="incident_active", kind="threshold", severity=2, status="firing",
    ...             fired_ms=60_000, labels={"rule": "incident_active", "category": "emergency", "segment_id": "S1"})
    >>> jam = Alert(fingerprint="j", rule_id="jam", kind="threshold", severity=3, status="firing",
    ...             fired_ms=0, labels={"rule": "jam", "category": "traffic", "segment_id": "S1"})
    >>> far = Alert(fingerprint="f", rule_id="jam", kind="threshold", severity=3, status="firing",
    ...             fired_ms=0, labels={"rule": "jam", "category": "traffic", "segment_id": "S9"})
    >>> sorted(Correlator([rule]).apply({"i": inc, "j": jam, "f": far}, now_ms=60_000).items())
    [('f', 'f'), ('i', 'i'), ('j', 'i')]
"""
from __future__ import annotations

import math

import numpy as np

from brain.alerts.inhibition import InhibitRule
from brain.alerts.model import Alert, match_all
from brain.alerts.roadgraph import RoadNetwork
from brain.alerts.supplyzones import SupplyZones

#: labels of a target alert that can name a multi-point alert's source (``feed:id`` in ``sources``)
SOURCE_LABELS = ("sensor_id", "case_id", "incident_id")


class CorrelateRule(InhibitRule):
    """Source (anchor) matchers, target matchers, labels that must be equal, optional distance in metres."""

    _noun = "a correlate rule"

    def __init__(self, source: object, target: object, equal: list[str] | tuple[str, ...] = (),
                 within_m: float | None = None, upstream_m: float | None = None, network: RoadNetwork | None = None,
                 same_zone: bool = False, zones: SupplyZones | None = None):
        super().__init__(source, target, equal)
        for name, v in (("within_m", within_m), ("upstream_m", upstream_m)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise ValueError(f"correlate rule {name} must be a positive number of metres, got {v!r}")
        if not isinstance(same_zone, bool):
            raise ValueError(f"correlate rule same_zone must be true or false, got {same_zone!r}")
        if not equal and within_m is None and upstream_m is None and not same_zone:
            raise ValueError("a correlate rule needs 'equal' labels, 'within_m', 'upstream_m' or 'same_zone' "
                             "(else it would link everything)")
        self.within_m = None if within_m is None else float(within_m)
        # along the road graph: the target's segment_id is the anchor's or lies upstream of it within
        # upstream_m metres of road (the rule links nothing until a network is bound, e.g. by the rule engine)
        self.upstream_m = None if upstream_m is None else float(upstream_m)
        self.network = network
        # in the same metered supply zone (the rule links nothing until zones are bound, e.g. by the rule engine)
        self.same_zone = same_zone
        self.zones = zones

    def __repr__(self) -> str:
        return (f"CorrelateRule(source={[str(m) for m in self.source]}, target={[str(m) for m in self.target]}, "
                f"equal={list(self.equal)}, within_m={self.within_m}, upstream_m={self.upstream_m}, same_zone={self.same_zone})")


def _age(a: Alert) -> tuple:
    return (a.fired_ms or a.started_ms, a.fingerprint)


class _Points:
    """Anchors sorted by preference (most severe, then oldest) with their points, for radius look-ups."""

    def __init__(self, anchors: list[Alert]):
        self.anchors = sorted((a for a in anchors if a.lon is not None and a.lat is not None),
                              key=lambda a: (a.severity, _age(a)))
        self.lon = np.array([a.lon for a in self.anchors], dtype=np.float64)
        self.lat = np.array([a.lat for a in self.anchors], dtype=np.float64)

    def best_within(self, t: Alert, radius_m: float) -> Alert | None:
        if t.lon is None or t.lat is None or not self.anchors:
            return None
        kx = 111_320.0 * math.cos(math.radians(t.lat))
        d2 = ((self.lon - t.lon) * kx) ** 2 + ((self.lat - t.lat) * 110_574.0) ** 2
        for i in np.flatnonzero(d2 <= radius_m * radius_m):
            if self.anchors[i].fingerprint != t.fingerprint:
                return self.anchors[i]
        return None


class Correlator:
    """Sets ``Alert.incident`` on every active alert; returns ``{fingerprint: incident key}`` for them.

    ``reopen_ms`` (0: off; the alert pipeline sets its subscriptions' longest ``reopen_within``): an
    alert that fires with nothing active to explain it joins the incident of an alert resolved less than
    that long ago that would have explained it (a correlate link from the resolved alert to it) or that
    shares a source with it (a multi-point alert made of the resolved alert's sensor, or two multi-point
    alerts with a source in common). So a cluster that resolves and re-forms a tick later in another shape
    stays the incident it paged as, and its group reports it as an update.
    """

    def __init__(self, rules: list[CorrelateRule] | tuple[CorrelateRule, ...] = (), reopen_ms: int = 0):
        self.rules = list(rules)
        self.reopen_ms = int(reopen_ms)

    def anchors(self, active: list[Alert]) -> dict[str, str]:
        """Target fingerprint → its best anchor's fingerprint (the most severe, then the oldest)."""
        best: dict[str, Alert] = {}

        def offer(target: Alert, anchor: Alert) -> None:
            if anchor.fingerprint == target.fingerprint:
                return
            cur = best.get(target.fingerprint)
            if cur is None or (anchor.severity, _age(anchor)) < (cur.severity, _age(cur)):
                best[target.fingerprint] = anchor

        for rule in self.rules:
            index: dict[tuple, list[Alert]] = {}
            for a in active:
                if match_all(rule.source, a.labels):
                    key = tuple(a.labels.get(n, "") for n in rule.equal)
                    if all(key):
                        index.setdefault(key, []).append(a)
            if not index:
                continue
            if rule.within_m is not None:  # per bucket: anchors in preference order, their points as arrays
                near = {k: _Points(v) for k, v in index.items()}
            for t in active:
                if not match_all(rule.target, t.labels):
                    continue
                key = tuple(t.labels.get(n, "") for n in rule.equal)
                if rule.same_zone:
                    zones = rule.zones.zones_of(t.labels) if rule.zones is not None else set()
                    if zones:
                        for anchor in index.get(key, ()):
                            if zones & rule.zones.zones_of(anchor.labels):
                                offer(t, anchor)
                elif rule.upstream_m is not None:
                    seg = t.labels.get("segment_id")
                    if rule.network is None or not seg:
                        continue
                    for anchor in index.get(key, ()):
                        head = anchor.labels.get("segment_id")
                        if head and (seg == head or seg in rule.network.upstream(head, rule.upstream_m)):
                            offer(t, anchor)
                elif rule.within_m is None:
                    for anchor in index.get(key, ()):
                        offer(t, anchor)
                elif key in near:
                    anchor = near[key].best_within(t, rule.within_m)
                    if anchor is not None:
                        offer(t, anchor)
        by_source: dict[str, list[Alert]] = {}
        for a in active:
            for n in SOURCE_LABELS:
                if a.labels.get(n):
                    by_source.setdefault(a.labels[n], []).append(a)
        if by_source:
            for m in active:
                if m.kind != "multipoint" or not m.labels.get("sources"):
                    continue
                for src in m.labels["sources"].split(","):
                    for t in by_source.get(src.split(":", 1)[-1], ()):
                        offer(t, m)
        return {fp: a.fingerprint for fp, a in best.items()}

    def reopened(self, alerts: dict[str, Alert], fresh: list[Alert], now_ms: int) -> dict[str, str]:
        """Fresh root alert's fingerprint → the incident key of the recently resolved alert it re-forms."""
        recent = [a for a in alerts.values() if a.status == "resolved" and a.incident
                  and now_ms - a.resolved_ms < self.reopen_ms]
        if not recent or not fresh:
            return {}
        by_fp = {a.fingerprint: a for a in recent}
        links: dict[str, list[Alert]] = {}
        # a correlate link from a resolved alert to the fresh one: what explained it a moment ago still does
        # (the reverse, a fresh alert that would explain a resolved one, is a new cause and pages on its own)
        for t, anc in self.anchors(recent + fresh).items():
            if anc in by_fp and t not in by_fp:
                links.setdefault(t, []).append(by_fp[anc])
        # shared sources: a multi-point alert is made of its sources, whichever of them resolved first
        for m in fresh:
            if m.kind != "multipoint" or not m.labels.get("sources"):
                continue
            ids = {src.split(":", 1)[-1] for src in m.labels["sources"].split(",") if src}
            for r in recent:
                own = {r.labels[n] for n in SOURCE_LABELS if r.labels.get(n)}
                if r.kind == "multipoint" and r.labels.get("sources"):
                    own |= {src.split(":", 1)[-1] for src in r.labels["sources"].split(",") if src}
                if own & ids:
                    links.setdefault(m.fingerprint, []).append(r)
        # the most severe, then the most recently resolved
        return {fp: min(rs, key=lambda r: (r.severity, -r.resolved_ms, r.fingerprint)).incident
                for fp, rs in links.items()}

    def apply(self, alerts: dict[str, Alert], now_ms: int) -> dict[str, str]:
        active = sorted((a for a in alerts.values() if a.active), key=_age)
        by_fp = {a.fingerprint: a for a in active}
        anchor = self.anchors(active)
        # keys already paged: held by an active alert that pages on its own (not digest-only)
        paged = {a.incident for a in active if a.incident and not a.digest_ms}
        # a multi-point alert is made of its sources: if one of them already pages, it joins that incident
        adopt: dict[str, str] = {}
        for t, m in anchor.items():
            a, k = by_fp[t], by_fp[t].incident
            if by_fp[m].kind == "multipoint" and k in paged and (m not in adopt or a.incident_ms < by_fp[adopt[m]].incident_ms):
                adopt[m] = t
        # a root that fires now (never keyed before) may re-form an incident that resolved moments ago
        reopened = self.reopened(alerts, [a for a in active if not a.incident and a.fingerprint not in anchor
                                          and a.fingerprint not in adopt], now_ms) if self.reopen_ms else {}
        key_of: dict[str, str] = {}

        def own_key(a: Alert, anc: str | None) -> str | None:
            """The key an alert settles on by itself, or None when it follows its anchor."""
            # sticky: during one activation an alert never leaves an incident that paged; a key from an
            # earlier activation is kept only when nothing explains the alert now (a fault re-firing)
            if a.incident and a.incident in paged and (anc is None or a.incident_ms >= a.fired_ms):
                return a.incident
            if anc is not None:
                return None
            if a.fingerprint in adopt:
                return by_fp[adopt[a.fingerprint]].incident
            # a root founds its own incident (or keeps the one it had, or re-forms one that just resolved)
            return a.incident or reopened.get(a.fingerprint) or a.fingerprint

        def resolve(fp: str) -> str:
            # follow anchors (iteratively: chains may be long) until an alert settles, then hand its key down
            path: list[str] = []
            seen: set[str] = set()
            key = None
            while fp not in key_of:
                a = by_fp[fp]
                anc = anchor.get(fp)
                if anc in seen:
                    anc = None  # a cycle of mutual anchors: the alert closing it founds the incident
                key = own_key(a, anc)
                path.append(fp)
                seen.add(fp)
                if key is not None:
                    break
                fp = anc
            else:
                key = key_of[fp]
            for x in path:
                key_of[x] = key
            return key

        for a in active:
            key = resolve(a.fingerprint)
            if a.incident != key:
                a.incident, a.incident_ms = key, now_ms
        return key_of
