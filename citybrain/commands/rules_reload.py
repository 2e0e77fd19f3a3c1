"""``citybrain rules reload --api URL --token T``: make a running engine reload its alert rules now.

A client of ``POST /api/v1/admin/rules/reload`` (admin tokens only): the API validates the engine's rule
files with the engine's own loader; a broken file is refused naming the file, the rule and the key, and
the engine keeps the rules it runs. A valid set is queued for the engine, which reloads at its next
command poll (about a second) and audits it; the command waits up to ``--wait`` seconds for that answer.
The standard library's HTTP client is used (the command must work wherever ``citybrain`` is installed).

Exit codes: 0 reloaded (or queued, said so), 1 the rules were refused, 2 a usage or connection problem.

Example (the errors a user meets first, without a server):
    >>> import argparse
    >>> try:
    ...     cmd_reload(argparse.Namespace(api=None, token="t", wait=5.0))
    ... except Exception as exc:
    ...     print(exc)
    rules reload asks the running engine through its API: give --api URL (the cockpit URL `citybrain run` prints) or set CITYBRAIN_API_URL
    >>> try:
    ...     cmd_reload(argparse.Namespace(api="127.0.0.1:8080", token="t", wait=5.0))
    ... except Exception as exc:
    ...     print(exc)
    --api must be an http:// or https:// URL, got '127.0.0.1:8080'
"""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from citybrain.cli import UserError

PATH = "/api/v1/admin/rules/reload"


def add_reload_parser(rsub) -> None:
    p = rsub.add_parser("reload", help="make the running engine reload its rule files now (admin token, through API v1)",
                        description=__doc__.split("\n\n")[1])
    p.add_argument("--api", metavar="URL", default=os.environ.get("CITYBRAIN_API_URL"),
                   help="the engine's cockpit/API URL, e.g. http://127.0.0.1:8080 (default CITYBRAIN_API_URL)")
    p.add_argument("--token", default=os.environ.get("CITYBRAIN_TOKEN"),
                   help="an admin bearer token (default CITYBRAIN_TOKEN; `citybrain tokens create --role admin`)")
    p.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                   help="seconds to wait for the engine to apply the reload (0..30, default 5)")
    p.set_defaults(func=cmd_reload)


def cmd_reload(args, file=sys.stdout) -> int:
    if not args.api:
        raise UserError("rules reload asks the running engine through its API: give --api URL (the cockpit URL "
                        "`citybrain run` prints) or set CITYBRAIN_API_URL")
    base = args.api.strip().rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--api must be an http:// or https:// URL, got {args.api!r}")
    if not args.token:
        raise UserError("--token (or CITYBRAIN_TOKEN) is needed: an admin token, made with "
                        "`citybrain tokens create NAME --role admin` or printed by `citybrain run` at start")
    if not 0 <= args.wait <= 30:
        raise UserError(f"--wait must be 0..30 seconds, got {args.wait:g}")
    url = f"{base}{PATH}?wait_s={args.wait:g}"
    req = urllib.request.Request(url, method="POST", data=b"", headers={"Authorization": f"Bearer {args.token}"})
    try:
        with urllib.request.urlopen(req, timeout=args.wait + 30) as r:
            status, body, ctype = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        status, body, ctype = exc.code, exc.read(), exc.headers.get("content-type", "")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach the API at {base}: {reason} (is `citybrain run` or `citybrain serve` running "
                        f"there?)") from None
    try:
        data = json.loads(body) if "json" in ctype else None
    except ValueError:
        data = None
    if data is None or not isinstance(data, dict):
        raise UserError(f"{base} did not answer as CityBrain API v1 (HTTP {status}, {ctype or 'no content type'}): "
                        f"check --api (the cockpit's port, not the controllers')")
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    if status == 401:
        raise UserError(f"the API refused the token (401): {err.get('message', 'unknown, revoked or expired')}")
    if status == 403:
        raise UserError(f"the token may not reload rules (403): {err.get('message', '')} - an admin token is needed")
    if status == 422:
        print(f"rules not reloaded: the engine keeps its running rules.\nproblem in {err.get('field', 'rules')}:\n"
              f"  {err.get('message', '')}", file=sys.stderr)
        return 1
    if status in (404, 405):
        raise UserError(f"no rule-reload endpoint at {url.split('?')[0]} (HTTP {status}): --api must be the cockpit's "
                        f"base URL, e.g. http://127.0.0.1:8080")
    if status >= 400:
        raise UserError(f"the API answered {status}: {err.get('field', '')} {err.get('message', body[:200])}".strip())
    print(f"rules validated: {data['packs']} pack(s), {data['rules']} rule(s) from {data['rules_path']} "
          f"(requested by {data['requested_by']})", file=file)
    print(f"engine: {data['engine']}", file=file)
    return 0
