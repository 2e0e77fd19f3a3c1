"""Grouping per subscription (Alertmanager timers), throttling and digests → notifications.

For each subscription, the notifiable alerts it matches (firing or acknowledged, not silenced,
not inhibited) are grouped by its ``group_by`` labels, where ``incident`` is the correlation key
of :mod:`brain.alerts.correlation` (the default: one group per real incident). A new group waits
``group_wait`` so that alerts born of one incident leave as one notification (with a ``tick``, the
period of the windows that drive it, an urgent group — yellow or worse — leaves at the last window
before that deadline, since no alert can join between two windows; an informational blue one waits
it out, which keeps one-window blips quiet); later changes (new
alerts, resolutions, a more severe level) leave at most every ``group_interval``; an unchanged
firing group is repeated every ``repeat_interval``. An alert already notified is reported
*resolved* once it resolves (or disappears), so every firing notification gets its resolve.

What is actionable: a group's first notification (``alert``, or ``escalation`` when it reached
a tiered subscriber by escalating) and a later one that brings an incident the group has not
reported (possible when grouping by place, e.g. ``group_by: [district]``) with a category or a level
the group has not seen. Everything else, and anything about incidents already reported, is an ``update``: more alerts of them, resolutions, a more severe
level (``raised``), an alert escalating. A group whose alerts all resolved is kept for
``reopen_within``: an alert re-firing into it then (a stuck detector that resolves and comes back)
is an update too, not a new page. Each notification's idempotency key is
``subscription:group-hash:group-birth-ms:sequence``: stable across restarts (birth and sequence are
state) and never reused when a group that emptied and was dropped forms again later.

Expected alerts (from a rule with a ``digest`` period, e.g. rush-hour congestion that recurs every
day) do not page: they go to the subscriber's periodic digest, unless their incident pages this
subscriber through another alert (the accident behind the jam), in which case they join its group.
Throttling: beyond ``N`` notifications per period a subscription's further notifications are
folded into its digest, sent once per period; ``digest_only`` subscribers receive only digests.

Example:
    >>> from brain.alerts.model import Alert
    >>> from brain.alerts.routing import Subscription
    >>> sub = Subscription.from_dict({"id": "s", "department": "ops", "group_wait": "0s",
    ...                               "channel": {"type": "log"}})
    >>> a = Alert(fingerprint="f", rule_id="r", kind="threshold", severity=3, status="firing",
    ...           labels={"district": "D1", "cell": "C1"}, fired_ms=0)
    >>> g = Grouper()
    >>> groups, subs_state = {}, {}
    >>> [(n.status, n.key.endswith(":1")) for n in g.step({"f": a}, [sub], groups, subs_state, 0)]
    [('firing', True)]
    >>> a.status = "resolved"
    >>> [(n.status, len(n.alerts)) for n in g.step({"f": a}, [sub], groups, subs_state, 600_000)]
    [('resolved', 1)]
"""
from __future__ import annotations

import hashlib

import msgspec

from brain.alerts.model import Alert, Notification, parse_duration_ms
from brain.alerts.routing import Router, Subscription


class GroupState(msgspec.Struct, kw_only=True):
    """What one subscription's group last notified (persisted with the alerts)."""

    subscription_id: str
    group_key: str
    labels: dict[str, str]
    created_ms: int
    last_sent_ms: int = 0
    seq: int = 0
    sent: dict[str, str] = {}  # fingerprint -> tier it was last notified at
    categories: list[str] = []  # categories this group has reported
    best_level: int = 5  # most severe level it has reported (1 red .. 4 blue; 5: none yet)
    incidents: list[str] = []  # incident keys this group has reported
    closed_ms: int = 0  # when its last alert's resolve went out (kept for the subscription's reopen_within)


class SubscriptionState(msgspec.Struct, kw_only=True):
    """Per-subscription throttle window and digest buffer."""

    sent_times_ms: list[int] = []
    digest: dict[str, Alert] = {}
    last_digest_ms: int = -1  # start of the digest period in progress (-1: none started yet)
    digest_seq: int = 0


def notifiable(a: Alert) -> bool:
    return a.active and not a.silenced_by and not a.inhibited_by


def incident_of(a: Alert) -> str:
    """The alert's incident key (its own fingerprint when no correlation ran)."""
    return a.incident or a.fingerprint


_encode = msgspec.json.Encoder().encode
MAX_GROUP_INCIDENTS = 256


def group_hash(sub_id: str, labels: dict[str, str]) -> str:
    return hashlib.blake2b(_encode((sub_id, sorted(labels.items()))), digest_size=6).hexdigest()


class Grouper:
    """Turns the current alert states into notifications, updating group and subscription state."""

    def __init__(self, router: Router | None = None, tick: object = 0):
        self.router = router or Router()
        # how often step() runs (the window length): a new group's notification is due group_wait after
        # it formed, and nothing can join it before the next step, so it leaves at the last step before
        # that deadline instead of one whole window after it (0: steps come at any time; wait it out)
        self.tick_ms = parse_duration_ms(tick)
        # fingerprint -> (routing signature, [(subscription id, group key, group labels)]): an alert's
        # routes change only when its severity, tier, location or the subscriptions do, so they are
        # recomputed then, not every window for every (alert, subscription) pair
        self._routes: dict[str, tuple[tuple, list[tuple[str, str, dict[str, str]]]]] = {}
        self._subs_sig: tuple = ()
        self._sig_labels: tuple = ()

    def _routes_of(self, a: Alert, subscriptions: list[Subscription]) -> list[tuple[str, str, dict[str, str]]]:
        lab = a.labels
        sig = (a.severity, a.tier, a.lon, a.lat, a.incident, *[lab.get(k) for k in self._sig_labels])
        hit = self._routes.get(a.fingerprint)
        if hit is not None and hit[0] == sig:
            return hit[1]
        routes = []
        for sub in subscriptions:
            if self.router.matches(sub, a):
                gl = {k: incident_of(a) if k == "incident" else lab.get(k, "") for k in sub.group_by}
                routes.append((sub.id, group_hash(sub.id, gl), gl))
        self._routes[a.fingerprint] = (sig, routes)
        return routes

    def step(self, alerts: dict[str, Alert], subscriptions: list[Subscription], groups: dict[str, GroupState],
             subs_state: dict[str, SubscriptionState], now_ms: int) -> list[Notification]:
        subs_sig = tuple(id(s) for s in subscriptions)
        if subs_sig != self._subs_sig:
            self._routes, self._subs_sig = {}, subs_sig
            # rule and kind are part of the fingerprint, so only these labels can change an alert's routes
            self._sig_labels = tuple(sorted({"category", "district", "street", "cell"}
                                            | {k for s in subscriptions for k in s.group_by}))
        if len(self._routes) > 2 * len(alerts) + 1000:
            self._routes = {fp: r for fp, r in self._routes.items() if fp in alerts}
        out: list[Notification] = []
        sub_ids = {s.id for s in subscriptions}
        for gid in [g for g, st in groups.items() if st.subscription_id not in sub_ids]:
            del groups[gid]  # the subscription was removed
        members_of: dict[str, dict[str, dict[str, Alert]]] = {s.id: {} for s in subscriptions}
        labels_of: dict[tuple[str, str], dict[str, str]] = {}
        paging: dict[str, set[str]] = {s.id: set() for s in subscriptions}  # incidents that page each subscriber
        expected: list[tuple[Alert, list]] = []
        for a in alerts.values():
            if not notifiable(a):
                continue
            routes = self._routes_of(a, subscriptions)
            if a.digest_ms:
                expected.append((a, routes))
                continue
            for sid, gk, gl in routes:
                members_of[sid].setdefault(gk, {})[a.fingerprint] = a
                labels_of[(sid, gk)] = gl
                paging[sid].add(incident_of(a))
        for a, routes in expected:
            for sid, gk, gl in routes:
                if incident_of(a) in paging[sid]:
                    members_of[sid].setdefault(gk, {})[a.fingerprint] = a
                    labels_of[(sid, gk)] = gl
                else:
                    _fold_expected(subs_state.setdefault(sid, SubscriptionState()), a)
        groups_of: dict[str, dict[str, str]] = {s.id: {} for s in subscriptions}
        for gid, st in groups.items():
            groups_of[st.subscription_id][st.group_key] = gid
        for sub in subscriptions:
            members = members_of[sub.id]
            sub_groups = groups_of[sub.id]
            for gk in set(members) | set(sub_groups):
                gid = sub_groups.get(gk) or f"{sub.id}|{gk}"
                st = groups.get(gid)
                firing = members.get(gk, {})
                if st is None:
                    st = groups[gid] = GroupState(subscription_id=sub.id, group_key=gk, labels=labels_of[(sub.id, gk)],
                                                  created_ms=now_ms)
                n = self._flush(sub, st, firing, alerts, now_ms)
                if n is not None:
                    out.extend(self._throttle(sub, subs_state.setdefault(sub.id, SubscriptionState()), n, now_ms))
                if st.sent or firing:
                    st.closed_ms = 0
                elif st.seq == 0 or not sub._reopen_ms:
                    del groups[gid]
                elif not st.closed_ms:
                    st.closed_ms = now_ms  # kept a while: a re-fire into it is an update, not a new page
                elif now_ms - st.closed_ms >= sub._reopen_ms:
                    del groups[gid]
            ss = subs_state.get(sub.id)
            if ss is not None and ss.digest:
                _refresh_digest(ss, alerts)
            d = self._digest(sub, ss, now_ms)
            if d is not None:
                out.append(d)
        return out

    def _flush(self, sub: Subscription, st: GroupState, firing: dict[str, Alert], alerts: dict[str, Alert],
               now_ms: int) -> Notification | None:
        resolved = [fp for fp in st.sent if fp not in firing and not _held(alerts.get(fp))]
        new = [fp for fp in firing if fp not in st.sent]
        raised = st.seq > 0 and any(a.severity < st.best_level for a in firing.values())
        if st.seq == 0:
            due_ms = st.created_ms + sub._group_wait_ms
            # urgent groups (yellow or worse) leave at the last step before the deadline; informational (blue)
            # ones wait it out, which also lets a one-window blip resolve before anyone is told
            early = self.tick_ms if min((a.severity for a in firing.values()), default=4) <= 3 else 0
            if not firing or (now_ms < due_ms and now_ms + early <= due_ms):
                return None
            reason = "escalation" if any(_escalated(firing[fp]) for fp in new) else "alert"
        elif new or resolved or raised:
            if now_ms - st.last_sent_ms < sub._group_interval_ms:
                return None
            # a real incident the group has not reported, into a closed group or bringing a category or a level
            # it has not seen (grouping by place: one more jam in a district of jams stays more of the same)
            news = [fp for fp in new if incident_of(firing[fp]) not in st.incidents and (
                st.closed_ms or firing[fp].severity < st.best_level
                or firing[fp].labels.get("category", "") not in st.categories)]
            if news:
                reason = "escalation" if any(_escalated(firing[fp]) for fp in news) else "alert"
            else:  # more of what the subscriber already has open, even if worse: an update in the group
                reason = "update"
        elif firing and now_ms - st.last_sent_ms >= sub._repeat_interval_ms:
            reason = "repeat"
        else:
            return None
        for fp in resolved:
            del st.sent[fp]
        for fp, a in firing.items():
            st.sent[fp] = a.tier
            cat = a.labels.get("category", "")
            if cat not in st.categories:
                st.categories.append(cat)
            inc = incident_of(a)
            if inc not in st.incidents:
                st.incidents.append(inc)
                del st.incidents[:-MAX_GROUP_INCIDENTS]  # a long-lived place group: remember the latest ones
            st.best_level = min(st.best_level, a.severity)
        if not firing and not sub.send_resolved:
            return None
        snap = [msgspec.structs.replace(a) for a in firing.values()]
        for fp in resolved:
            a = alerts.get(fp)
            if a is not None:
                snap.append(msgspec.structs.replace(a, status="resolved") if a.status != "resolved" else msgspec.structs.replace(a))
        if not snap:
            return None
        st.seq += 1
        st.last_sent_ms = now_ms
        tiers = [a.tier for a in firing.values()]
        return Notification(key=f"{sub.id}:{st.group_key}:{st.created_ms}:{st.seq}", subscription_id=sub.id, group_key=st.group_key,
                            status="firing" if firing else "resolved", reason=reason, ts_ms=now_ms, alerts=snap,
                            group_labels=dict(st.labels), tier=max(tiers, key=_tier_rank) if tiers else "",
                            raised=raised and reason == "update")

    def _throttle(self, sub: Subscription, ss: SubscriptionState, n: Notification, now_ms: int) -> list[Notification]:
        if sub.digest_only:
            _fold(ss, n)
            return []
        if sub._throttle is not None:
            limit, period_ms = sub._throttle
            ss.sent_times_ms = [t for t in ss.sent_times_ms if now_ms - t < period_ms]
            if len(ss.sent_times_ms) >= limit:
                _fold(ss, n)
                return []
            ss.sent_times_ms.append(now_ms)
        return [n]

    def _digest(self, sub: Subscription, ss: SubscriptionState | None, now_ms: int) -> Notification | None:
        if ss is None:
            return None
        # the subscription's own period, else the shortest period of the expected alerts waiting in it
        period_ms = sub._digest_ms or min((a.digest_ms for a in ss.digest.values() if a.digest_ms), default=0)
        if not period_ms:
            return None
        # periods are aligned to local time (a daily digest covers a local day and leaves at midnight)
        offset_ms = int(sub.utc_offset_h * 3_600_000)
        start_ms = (now_ms + offset_ms) // period_ms * period_ms - offset_ms
        if ss.last_digest_ms < 0:
            ss.last_digest_ms = start_ms
        if not ss.digest or start_ms <= ss.last_digest_ms:
            return None
        ss.digest_seq += 1
        ss.last_digest_ms = start_ms
        items = sorted(ss.digest.values(), key=lambda a: (a.severity, a.fired_ms))
        ss.digest = {}
        return Notification(key=f"{sub.id}:digest:{ss.digest_seq}", subscription_id=sub.id, group_key="digest",
                            status="firing" if any(a.active for a in items) else "resolved", reason="digest",
                            ts_ms=now_ms, alerts=items)


def _fold(ss: SubscriptionState, n: Notification) -> None:
    for a in n.alerts:
        ss.digest[a.fingerprint] = a


def _fold_expected(ss: SubscriptionState, a: Alert) -> None:
    """Keep an expected alert's latest activation in the digest (a copy only when it changed)."""
    have = ss.digest.get(a.fingerprint)
    if have is None or have.fired_ms != a.fired_ms or have.status != a.status or have.severity != a.severity:
        ss.digest[a.fingerprint] = msgspec.structs.replace(a)


def _refresh_digest(ss: SubscriptionState, alerts: dict[str, Alert]) -> None:
    """Expected alerts waiting in the digest that resolved since are listed as resolved."""
    for fp, have in ss.digest.items():
        if have.digest_ms and have.status != "resolved":
            now = alerts.get(fp)
            if now is None or (now.status == "resolved" and now.resolved_ms >= have.fired_ms):
                ss.digest[fp] = msgspec.structs.replace(have, status="resolved",
                                                         resolved_ms=now.resolved_ms if now is not None else 0)


def _escalated(a: Alert) -> bool:
    return a.tier_since_ms > a.fired_ms


def _held(a: Alert | None) -> bool:
    """An alert that is still active but muted (silenced/inhibited) keeps its place: no resolve yet."""
    return a is not None and a.active


_TIER_RANK = {"street": 0, "district": 1, "city": 2}


def _tier_rank(t: str) -> int:
    return _TIER_RANK.get(t, 0)
