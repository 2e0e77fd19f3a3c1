"""CAP 1.2 (OASIS Common Alerting Protocol) encoder and checker, with GB/T 35965.1-style identifiers.

:func:`alert_to_cap` renders one alert as a CAP ``<alert>`` document; :func:`check_cap` parses a
document and lists every problem (missing required elements, values outside the enumerations,
open polygons, malformed times), so tests and receivers can verify what was sent.

Identifiers follow the GB/T 35965.1 pattern: the 6-digit GB/T 2260 administrative-area code of
the issuing area, the issuing organisation's code, the issue time ``YYYYMMDDHHMMSS`` (local time)
and a 4-digit sequence number, e.g. ``330106CITYBRAIN202611210830000001``.

Mapping from the four Chinese warning levels to CAP severity: red (I) → Extreme, orange (II)
→ Severe, yellow (III) → Moderate, blue (IV) → Minor. A resolved alert becomes ``msgType``
Cancel and an escalated/repeated one Update, both with ``references`` to the first message.

Example:
    >>> from brain.alerts.model import Alert
    >>> a = Alert(fingerprint="f1", rule_id="aqi_heavy", kind="threshold", severity=2, status="firing",
    ...           labels={"category": "environment", "district": "D1"}, summary="AQI 230 at A1", fired_ms=0,
    ...           lon=120.15, lat=30.28)
    >>> xml = alert_to_cap(a, sender="citybrain@example.gov.cn", admin_code="330106", sent_ms=0, seq=1)
    >>> check_cap(xml)
    []
    >>> "<severity>Severe</severity>" in xml, cap_identifier("330106", "CITYBRAIN", 0, 1)
    (True, '330106CITYBRAIN197001010800000001')
"""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from brain.alerts.model import Alert, severity_colour

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"

STATUS = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPE = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPE = ("Public", "Restricted", "Private")
CATEGORY = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other")
URGENCY = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITY = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTY = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
RESPONSE_TYPE = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None")

LEVEL_TO_CAP_SEVERITY = {1: "Extreme", 2: "Severe", 3: "Moderate", 4: "Minor"}
#: CityBrain ``category`` label → CAP category (emergency alerts refine by their ``incident_type`` label).
CATEGORY_TO_CAP = {
    "traffic": "Transport",
    "environment": "Env",
    "grid": "Infra",
    "utilities": "Infra",
    "sensor_health": "Infra",
    "emergency": "Safety",
}
INCIDENT_TYPE_TO_CAP = {"fire": "Fire", "medical": "Health", "police": "Security", "hazmat": "CBRNE", "rescue": "Rescue"}
KIND_TO_CERTAINTY = {"anomaly": "Likely", "composite": "Likely", "rate": "Likely"}

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def cap_time(ts_ms: int, utc_offset_h: float = 8.0) -> str:
    """CAP date-time: local time with a numeric offset (CAP forbids the ``Z`` suffix)."""
    offset_min = int(round(utc_offset_h * 60))
    t = time.gmtime(ts_ms / 1000.0 + offset_min * 60)
    sign = "+" if offset_min >= 0 else "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


def cap_identifier(admin_code: str, org_code: str, sent_ms: int, seq: int, utc_offset_h: float = 8.0) -> str:
    """GB/T 35965.1-style identifier: area code + organisation code + local issue time + sequence."""
    if not re.fullmatch(r"\d{6}", admin_code or ""):
        raise ValueError(f"admin_code must be the 6-digit GB/T 2260 code, got {admin_code!r}")
    if not re.fullmatch(r"[A-Za-z0-9]{1,20}", org_code or ""):
        raise ValueError(f"org_code must be 1-20 letters or digits, got {org_code!r}")
    if not 0 <= seq <= 9999:
        raise ValueError(f"seq must be 0..9999, got {seq}")
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(sent_ms / 1000.0 + utc_offset_h * 3600))
    return f"{admin_code}{org_code}{stamp}{seq:04d}"


def close_polygon(points: list[list[float]]) -> list[list[float]]:
    """``[lon, lat]`` points with the first point repeated at the end if it was not already."""
    if len(points) < 3:
        raise ValueError("a polygon needs at least 3 points")
    pts = [list(p) for p in points]
    if pts[0] != pts[-1]:
        pts.append(list(pts[0]))
    return pts


def alert_to_cap(alert: Alert, *, sender: str, admin_code: str, sent_ms: int, seq: int, org_code: str = "CITYBRAIN",
                 status: str = "Actual", scope: str = "Public", msg_type: str | None = None,
                 references: str = "", polygon: list[list[float]] | None = None, radius_km: float = 1.0,
                 area_desc: str = "", expires_ms: int | None = None, language: str = "zh-CN",
                 utc_offset_h: float = 8.0, sender_name: str = "CityBrain 城市运行管理中心") -> str:
    """One alert as a CAP 1.2 XML document (UTF-8 text). ``polygon`` is ``[lon, lat]`` points; it is closed."""
    if status not in STATUS:
        raise ValueError(f"CAP status must be one of {STATUS}, got {status!r}")
    if scope not in SCOPE:
        raise ValueError(f"CAP scope must be one of {SCOPE}, got {scope!r}")
    if msg_type is None:
        msg_type = "Cancel" if alert.status == "resolved" else ("Update" if references else "Alert")
    if msg_type not in MSG_TYPE:
        raise ValueError(f"CAP msgType must be one of {MSG_TYPE}, got {msg_type!r}")
    if msg_type in ("Update", "Cancel") and not references:
        raise ValueError(f"a CAP {msg_type} must reference the message it updates")
    ident = cap_identifier(admin_code, org_code, sent_ms, seq, utc_offset_h)
    labels = alert.labels
    category = labels.get("cap_category") or INCIDENT_TYPE_TO_CAP.get(labels.get("incident_type", "")) \
        or CATEGORY_TO_CAP.get(labels.get("category", ""), "Other")
    urgency = "Past" if alert.status == "resolved" else ("Immediate" if alert.active else "Expected")
    certainty = KIND_TO_CERTAINTY.get(alert.kind, "Observed")
    colour = severity_colour(alert.severity)
    e = escape
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<alert xmlns="{CAP_NS}">',
        f"<identifier>{e(ident)}</identifier>",
        f"<sender>{e(sender)}</sender>",
        f"<sent>{cap_time(sent_ms, utc_offset_h)}</sent>",
        f"<status>{status}</status>",
        f"<msgType>{msg_type}</msgType>",
        f"<scope>{scope}</scope>",
        f"<code>GB/T 35965.1</code>",
    ]
    if references:
        parts.append(f"<references>{e(references)}</references>")
    parts.append(f"<incidents>{e(alert.fingerprint)}</incidents>")
    parts += [
        "<info>",
        f"<language>{e(language)}</language>",
        f"<category>{category}</category>",
        f"<event>{e(alert.rule_id)}</event>",
        f"<responseType>{'AllClear' if alert.status == 'resolved' else 'Monitor'}</responseType>",
        f"<urgency>{urgency}</urgency>",
        f"<severity>{LEVEL_TO_CAP_SEVERITY[alert.severity]}</severity>",
        f"<certainty>{certainty}</certainty>",
        f"<eventCode><valueName>warning_level</valueName><value>{colour}</value></eventCode>",
        f"<onset>{cap_time(alert.fired_ms or alert.started_ms, utc_offset_h)}</onset>",
    ]
    if expires_ms is not None:
        parts.append(f"<expires>{cap_time(expires_ms, utc_offset_h)}</expires>")
    parts += [
        f"<senderName>{e(sender_name)}</senderName>",
        f"<headline>{e(alert.summary or alert.rule_id)[:160]}</headline>",
        f"<description>{e(alert.summary)}</description>",
    ]
    for name in sorted(labels):
        parts.append(f"<parameter><valueName>{e(name)}</valueName><value>{e(str(labels[name]))}</value></parameter>")
    for name in sorted(alert.evidence):
        parts.append(f"<parameter><valueName>evidence.{e(name)}</valueName><value>{e(str(alert.evidence[name]))}</value></parameter>")
    desc = area_desc or " / ".join(labels[k] for k in ("district", "street", "cell", "segment_id") if labels.get(k)) or "city"
    parts += ["<area>", f"<areaDesc>{e(desc)}</areaDesc>"]
    if polygon:
        pts = close_polygon(polygon)
        parts.append("<polygon>" + " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in pts) + "</polygon>")
    if alert.lon is not None and alert.lat is not None:
        parts.append(f"<circle>{alert.lat:.6f},{alert.lon:.6f} {radius_km:g}</circle>")
    parts.append(f"<geocode><valueName>GB/T 2260</valueName><value>{e(admin_code)}</value></geocode>")
    parts += ["</area>", "</info>", "</alert>"]
    return "".join(parts)


def cap_reference(sender: str, identifier: str, sent: str) -> str:
    """One entry of a CAP ``references`` list: ``sender,identifier,sent``."""
    return f"{sender},{identifier},{sent}"


def check_cap(xml_text: str) -> list[str]:
    """Problems found in a CAP 1.2 document (empty list: valid for what is checked)."""
    try:
        root = ET.fromstring(xml_text.encode() if isinstance(xml_text, str) else xml_text)
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    ns = {"c": CAP_NS}
    errs: list[str] = []
    if root.tag != f"{{{CAP_NS}}}alert":
        return [f"root element must be <alert> in namespace {CAP_NS}, got {root.tag}"]

    def text(node, name):
        el = node.find(f"c:{name}", ns)
        return None if el is None else (el.text or "")

    for req in ("identifier", "sender", "sent", "status", "msgType", "scope"):
        if not text(root, req):
            errs.append(f"alert: missing required <{req}>")
    for name, allowed in (("status", STATUS), ("msgType", MSG_TYPE), ("scope", SCOPE)):
        v = text(root, name)
        if v and v not in allowed:
            errs.append(f"alert: <{name}> {v!r} not one of {allowed}")
    sent = text(root, "sent")
    if sent and not _TIME_RE.match(sent):
        errs.append(f"alert: <sent> {sent!r} must be YYYY-MM-DDThh:mm:ss±hh:mm")
    ident = text(root, "identifier") or ""
    if re.search(r"[\s,<&]", ident):
        errs.append("alert: <identifier> must not contain spaces, commas or restricted characters")
    if text(root, "msgType") in ("Update", "Cancel") and not text(root, "references"):
        errs.append("alert: Update/Cancel needs <references>")
    infos = root.findall("c:info", ns)
    for i, info in enumerate(infos):
        where = f"info[{i}]"
        cats = [c.text for c in info.findall("c:category", ns)]
        if not cats:
            errs.append(f"{where}: missing required <category>")
        errs += [f"{where}: <category> {c!r} not one of {CATEGORY}" for c in cats if c not in CATEGORY]
        for rt in info.findall("c:responseType", ns):
            if rt.text not in RESPONSE_TYPE:
                errs.append(f"{where}: <responseType> {rt.text!r} not one of {RESPONSE_TYPE}")
        if not text(info, "event"):
            errs.append(f"{where}: missing required <event>")
        for name, allowed in (("urgency", URGENCY), ("severity", SEVERITY), ("certainty", CERTAINTY)):
            v = text(info, name)
            if not v:
                errs.append(f"{where}: missing required <{name}>")
            elif v not in allowed:
                errs.append(f"{where}: <{name}> {v!r} not one of {allowed}")
        for name in ("effective", "onset", "expires"):
            v = text(info, name)
            if v is not None and not _TIME_RE.match(v):
                errs.append(f"{where}: <{name}> {v!r} must be YYYY-MM-DDThh:mm:ss±hh:mm")
        for j, area in enumerate(info.findall("c:area", ns)):
            if not text(area, "areaDesc"):
                errs.append(f"{where}.area[{j}]: missing required <areaDesc>")
            for poly in area.findall("c:polygon", ns):
                errs += [f"{where}.area[{j}]: {p}" for p in _check_polygon(poly.text or "")]
            for circ in area.findall("c:circle", ns):
                if not re.fullmatch(r"\s*-?\d+(\.\d+)?,-?\d+(\.\d+)?\s+\d+(\.\d+)?\s*", circ.text or ""):
                    errs.append(f"{where}.area[{j}]: <circle> must be 'lat,lon radius_km', got {circ.text!r}")
    return errs


def _check_polygon(text: str) -> list[str]:
    pairs = text.split()
    if len(pairs) < 4:
        return [f"<polygon> needs at least 4 points (closed), got {len(pairs)}"]
    pts = []
    for p in pairs:
        try:
            lat, lon = (float(x) for x in p.split(","))
        except ValueError:
            return [f"<polygon> point {p!r} must be 'lat,lon'"]
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return [f"<polygon> point {p!r} out of range (lat,lon order?)"]
        pts.append((lat, lon))
    if pts[0] != pts[-1]:
        return ["<polygon> is not closed (first and last points differ)"]
    return []
