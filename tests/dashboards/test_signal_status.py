"""Controllers' status reports fed back into the engine: ``citybrain controller emulate`` (the real CLI, as a
process) reports to the hub of a running ``citybrain run``; each report becomes a ``signal_status`` record
checked by the engine's ingest (decoder + validator); accepted ones are what the cockpit's controllers
table shows, a report with a mode no controller has is refused with the engine's reason, shown per
controller and in the dead letters by sensor. Real engine process, real Redis, real sockets."""
import asyncio
import subprocess

import aiohttp
import httpx
import msgspec

from streams.controllers.protocol import StatusMessage, controller_key, sign
from tests.dashboards.test_controller_hub import CITYBRAIN, engine, wait_for  # noqa: F401 - the fixture


def test_emulated_controllers_reports_become_validated_signal_status(engine, tmp_path):  # noqa: F811
    api = httpx.Client(base_url=engine["api"], timeout=30, headers={"Authorization": f"Bearer {engine['token']}"})
    key_file = tmp_path / "master.key"
    key_file.write_bytes(engine["master"])
    log = tmp_path / "emulate.log"
    with open(log, "w") as out:
        emu = subprocess.Popen([CITYBRAIN, "controller", "emulate", "--url", engine["controllers"], "--corridor", "jiefang",
                                "--secret-file", str(key_file), "--interval", "0.5"], stdout=out, stderr=subprocess.STDOUT)
    try:
        def rows():
            got = api.get("/api/v1/plans/controllers").json()
            return got, {r["intersection"]: r for r in got["rows"]}

        ids = [r["intersection"] for r in api.get("/api/v1/plans/controllers").json()["rows"] if r["corridor"] == "jiefang"]
        assert ids, "the demo city's jiefang corridor has controllers"
        # every jiefang controller's report came through validation: phase, time in phase, mode, faults, time
        got, by = wait_for(lambda: (x := rows()) and all(x[1][i]["status_ts_ms"] and x[1][i]["phase"] is not None
                                                          for i in ids) and x, 120, "validated status of every controller")
        for i in ids:
            r = by[i]
            assert r["mode"] in ("coordinated", "free") and r["phase"] >= 1 and r["phase_time_s"] >= 0
            assert r["detector_faults"] == 0 and r["status_refused"] is None
        assert got["signal_status_records"]["accepted"] >= len(ids)
        assert not any(k.startswith("dead.") for k in got["signal_status_records"]), got["signal_status_records"]
        # the other corridors' controllers never reported: nothing shown for them
        assert all(r["status_ts_ms"] is None for r in got["rows"] if r["corridor"] != "jiefang")
        # once a plan is acknowledged, the controller reports running it (seen through the validated record)
        wait_for(lambda: (x := rows()[1]) and all(x[i]["running_plan_id"] and x[i]["running_plan_id"] == x[i]["plan_id"]
                                                   for i in ids), 120, "the plans running as reported")
    finally:
        emu.terminate()
        emu.wait(30)
    assert "Traceback" not in log.read_text()

    # a correctly signed report the engine's validation refuses: a mode outside NTCIP's (ControllerMode)
    iid = ids[0]
    bad = sign(StatusMessage(intersection_id=iid, plan_id="P-x", pattern=1, phase=2, phase_time_s=3.0,
                             ts_ms=int(by[iid]["status_ts_ms"]) + 60_000, mode="dark"),
               controller_key(engine["master"], iid))

    async def post():
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{engine['controllers']}/controllers/{iid}/status", data=msgspec.json.encode(bad)) as r:
                return r.status

    assert asyncio.run(post()) == 202  # the hub takes it (MAC is good) ...
    refused = wait_for(lambda: rows()[1][iid]["status_refused"], 30, "the refusal")
    assert refused.startswith("bad_value") and "mode" in refused and "dark" in refused
    after = rows()
    assert after[1][iid]["mode"] != "dark" and after[1][iid]["plan_id"]  # ... the engine keeps the last valid one
    assert after[0]["signal_status_records"].get("dead.bad_value") == 1
    dead = wait_for(lambda: next((d for d in api.get("/api/v1/sensors/deadletters").json()["by_sensor"]
                                  if d["sensor_id"] == f"TSC-{iid}"), None), 30, "the dead letter by sensor")
    assert dead["reasons"] == {"bad_value": 1}
