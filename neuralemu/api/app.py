"""The FastAPI app: REST control, Prometheus metrics, the /stream WebSocket and the dashboard.

Handlers never touch the engine: they validate (pydantic), post a command to
the engine host (:mod:`neuralemu.api.runner`) and await its reply, or read the
latest snapshot the host published. See docs/api.md.
"""


import asyncio
import json
import secrets
import threading
import time
from importlib import resources
from typing import Annotated

from fastapi import Body, FastAPI, File, Form, HTTPException, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from neuralemu import __version__
from neuralemu.api import schemas as S
from neuralemu.api.metrics import render_metrics
from neuralemu.api.runner import EngineRunner
from neuralemu.api.security import BodyLimitMiddleware, TokenAuthMiddleware
from neuralemu.api.uploads import UploadStore, safe_name
from neuralemu.errors import InputError

API_VERSION = "1"
STREAM_INTERVAL_S = 0.1

# Attaching users (one or many background users) can hit a one-time compile of the
# engine kernel for the larger user arrays on a fresh checkout (tens of seconds on a
# small machine): wait for it rather than answering 504 while the engine is busy.
SLOW_COMMAND_TIMEOUT_S = 120.0


def scenario_model():
    """The engine's scenario model (the same schema as the YAML scenario files)."""
    from neuralemu.scenario import Scenario
    return Scenario


def ue_model():
    """The scenario's per-UE model, reused as the POST /ues body."""
    import neuralemu.scenario as sc
    for name in ("UeSpec", "ScenarioUe", "UeScenario", "Ue"):
        if hasattr(sc, name):
            return getattr(sc, name)
    ann = scenario_model().model_fields["ues"].annotation
    return ann.__args__[0]


def error(status: int, msg: str, field: str | None = None, where: str = "body") -> HTTPException:
    loc = [where] + ([field] if field else [])
    return HTTPException(status_code=status, detail=[{"loc": loc, "msg": msg, "type": "request_error"}])


def _reply_or_raise(reply: dict) -> dict:
    if reply.get("ok"):
        return reply
    raise error(int(reply.get("status", 500)), reply.get("msg", "error"), reply.get("field"))


class ScenarioStore:
    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.lock = threading.Lock()

    def add(self, scenario: dict, name: str | None) -> dict:
        sid = secrets.token_hex(4)
        item = {"id": sid, "name": name, "state": "stored", "created_unix": time.time(),
                "scenario": scenario}
        with self.lock:
            self.items[sid] = item
        return item


def create_app(*, token: str | None = None, runner: EngineRunner | None = None,
               data_dir=None, engine_mode: str = "process", pace: bool = True,
               scenario_schema=None, ue_schema=None, api_nice: int = 0,
               default_mode: str = "offline", live_defaults: dict | None = None,
               realtime: int = 0) -> FastAPI:
    """Build the app; it starts its engine host on startup and stops it on shutdown.

    ``runner`` (an :class:`EngineRunner`, started and stopped with the app
    when given) and ``scenario_schema``/``ue_schema`` default to the real
    engine and scenario models; tests may pass others.
    """
    import contextlib
    import tempfile
    from pathlib import Path

    if runner is None:
        runner = EngineRunner(mode=engine_mode, pace=pace, api_nice=api_nice,
                              default_mode=default_mode, live_defaults=live_defaults,
                              realtime=realtime)
    store = UploadStore(Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="neuralemu-api-")))
    scenarios = ScenarioStore()
    Scenario = scenario_schema or scenario_model()
    UeSpec = ue_schema or ue_model()
    started_at = time.monotonic()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(runner.start)
        yield
        await asyncio.to_thread(runner.close)

    app = FastAPI(title="NeuralEmu", version=__version__, lifespan=lifespan,
                  description="REST control of a NeuralEmu cell emulation. "
                              "All errors have the shape of ErrorOut; `loc` names the field.",
                  responses={401: {"model": S.ErrorOut}, 422: {"model": S.ErrorOut}})
    app.state.runner = runner
    app.state.store = store
    app.state.scenarios = scenarios

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        loc = ["body"] + ([exc.field] if exc.field else [])
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": loc, "msg": str(exc), "type": "input_error"}]})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        detail = []
        for e in exc.errors():
            detail.append({"loc": [p if isinstance(p, (str, int)) else str(p) for p in e["loc"]],
                           "msg": e["msg"], "type": e["type"]})
        return JSONResponse(status_code=422, content={"detail": detail})

    # ---- small cached views of the latest snapshot ------------------------------------------
    cache: dict[str, tuple[int, bytes]] = {}

    def cached(key: str, build) -> bytes:
        snap = runner.snapshot
        seq = snap.get("seq", 0)
        hit = cache.get(key)
        if hit is not None and hit[0] == seq:
            return hit[1]
        body = json.dumps(build(snap), separators=(",", ":")).encode()
        cache[key] = (seq, body)
        return body

    def public_ue(u: dict) -> dict:
        return {k: v for k, v in u.items() if k != "delay_hist"}

    def running_snapshot() -> dict:
        snap = runner.snapshot
        if snap.get("state") not in ("running", "paused"):
            raise error(409, "no scenario is running; POST /scenarios/{id}/start first", where="state")
        return snap

    def find_ue(snap: dict, ue_id: int) -> dict:
        for u in snap.get("ues", []):
            if u["id"] == ue_id:
                return u
        raise error(404, f"no UE {ue_id}", "ue_id", where="path")

    # ---- service ----------------------------------------------------------------------
    @app.get("/health", response_model=S.HealthOut, tags=["service"])
    async def health():
        alive = runner.alive()
        return {"status": "ok" if alive else "degraded", "engine_alive": alive,
                "engine_mode": runner.mode, "state": runner.snapshot.get("state", "idle"),
                "mode": runner.snapshot.get("mode"),
                "engine_realtime": int(runner.snapshot.get("realtime") or 0),
                "uptime_s": time.monotonic() - started_at}

    @app.get("/version", response_model=S.VersionOut, tags=["service"])
    async def version():
        return {"name": "neuralemu", "version": __version__, "api": API_VERSION}

    # ---- scenarios ----------------------------------------------------------------------
    def scenario_out(item: dict) -> dict:
        snap = runner.snapshot
        state = item["state"]
        if snap.get("scenario_id") == item["id"] and snap.get("state") in ("running", "paused", "stopped"):
            state = snap["state"]
        return item | {"state": state}

    @app.post("/scenarios", response_model=S.ScenarioOut, status_code=201, tags=["scenarios"])
    async def create_scenario(scenario: Scenario):   # type: ignore[valid-type]
        data = scenario.model_dump(mode="json")
        return scenario_out(scenarios.add(data, getattr(scenario, "name", None)))

    @app.get("/scenarios", response_model=list[S.ScenarioOut], tags=["scenarios"])
    async def list_scenarios():
        return [scenario_out(i) for i in scenarios.items.values()]

    def get_item(sid: str) -> dict:
        item = scenarios.items.get(sid)
        if item is None:
            raise error(404, f"no scenario {sid!r}", "scenario_id", where="path")
        return item

    @app.get("/scenarios/{scenario_id}", response_model=S.ScenarioOut, tags=["scenarios"])
    async def get_scenario(scenario_id: str):
        return scenario_out(get_item(scenario_id))

    @app.delete("/scenarios/{scenario_id}", status_code=204, tags=["scenarios"])
    async def delete_scenario(scenario_id: str):
        item = get_item(scenario_id)
        if scenario_out(item)["state"] in ("running", "paused"):
            raise error(409, "scenario is running; stop it first", "scenario_id", where="path")
        scenarios.items.pop(scenario_id, None)
        return Response(status_code=204)

    async def lifecycle(scenario_id: str, op: str, start: S.StartSpec | None = None) -> dict:
        item = get_item(scenario_id)
        if op != "start" and runner.snapshot.get("scenario_id") != scenario_id:
            raise error(409, f"scenario {scenario_id!r} is not the running one", "scenario_id",
                        where="path")
        cmd = {"op": op}
        if op == "start":
            cmd |= {"scenario": item["scenario"], "scenario_id": scenario_id}
            if start is not None:
                cmd["mode"] = start.mode
                cmd["live"] = start.model_dump(exclude={"mode"}, exclude_none=True)
                if not cmd["live"].get("spare_ue_ids"):
                    cmd["live"].pop("spare_ue_ids", None)
        reply = _reply_or_raise(await runner.call(cmd, timeout_s=120.0))
        item["state"] = {"start": "running", "stop": "stopped", "pause": "paused",
                         "resume": "running"}[op]
        return {"id": scenario_id, "state": reply["result"]["state"],
                "applied_slot": reply.get("applied_slot"), "mode": reply["result"].get("mode")}

    @app.post("/scenarios/{scenario_id}/start", response_model=S.StateOut, tags=["scenarios"],
              summary="Start the scenario (offline, or live with {\"mode\": \"live\"})")
    async def start_scenario(scenario_id: str, spec: Annotated[S.StartSpec | None, Body()] = None):
        return await lifecycle(scenario_id, "start", spec)

    for _op in ("stop", "pause", "resume"):
        def _make(op):
            async def handler(scenario_id: str):
                return await lifecycle(scenario_id, op)
            handler.__name__ = f"{op}_scenario"
            return handler
        app.post(f"/scenarios/{{scenario_id}}/{_op}", response_model=S.StateOut,
                 tags=["scenarios"], summary=f"{_op.capitalize()} the scenario")(_make(_op))

    # ---- cell and UEs ---------------------------------------------------------------------
    @app.get("/cell", response_model=S.CellOut, tags=["cell"])
    async def get_cell():
        def build(snap):
            cell = snap.get("cell") or {}
            return {"scenario_id": snap.get("scenario_id"), "state": snap.get("state", "idle"),
                    "slot": snap.get("slot", 0), "t_us": snap.get("t_us", 0),
                    "config": cell.get("config"), "slot_us": cell.get("slot_us"),
                    "prbs_total": cell.get("prbs_total"),
                    "prb_utilization": cell.get("prb_utilization", 0.0),
                    "policy": snap.get("policy"), "background": snap.get("background"),
                    "slot_lateness_us": snap.get("slot_lateness_us", {}),
                    "decision_time_us": snap.get("decision_time_us", {}),
                    "mode": snap.get("mode"), "live": snap.get("live")}
        return Response(cached("cell", build), media_type="application/json")

    @app.get("/ues", response_model=list[S.UeOut], tags=["ues"])
    async def list_ues():
        return Response(cached("ues", lambda s: [public_ue(u) for u in s.get("ues", [])]),
                        media_type="application/json")

    @app.get("/ues/{ue_id}", response_model=S.UeOut, tags=["ues"])
    async def get_ue(ue_id: int):
        return public_ue(find_ue(running_snapshot(), ue_id))

    @app.post("/ues", response_model=S.UeAttachOut, status_code=201, tags=["ues"])
    async def attach_ue(ue: UeSpec):   # type: ignore[valid-type]
        snap = running_snapshot()
        spec = ue.model_dump(mode="json", exclude_unset=True)
        ip = spec.get("ip")
        if ip is not None and any(u.get("ip") == ip for u in snap["ues"]):
            raise error(409, f"IP {ip} is already mapped to another UE", "ip")
        reply = _reply_or_raise(await runner.call({"op": "add_ue", "ue": spec},
                                                   timeout_s=SLOW_COMMAND_TIMEOUT_S))
        return {"id": reply["result"]["id"], "applied_slot": reply.get("applied_slot")}

    @app.delete("/ues/{ue_id}", status_code=204, tags=["ues"])
    async def detach_ue(ue_id: int):
        find_ue(running_snapshot(), ue_id)
        _reply_or_raise(await runner.call({"op": "remove_ue", "ue_id": ue_id}))
        return Response(status_code=204)

    @app.patch("/ues/{ue_id}", response_model=S.UeOut, tags=["ues"])
    async def patch_ue(ue_id: int, patch: S.UePatch):
        snap = running_snapshot()
        find_ue(snap, ue_id)
        body = patch.model_dump(exclude_unset=True)
        if not body:
            raise error(422, "empty patch: give at least one field", None)
        if body.get("ip") is not None and any(u.get("ip") == body["ip"] and u["id"] != ue_id
                                               for u in snap["ues"]):
            raise error(409, f"IP {body['ip']} is already mapped to another UE", "ip")
        if body.get("channel_trace") is not None:
            try:
                body["channel_trace_path"] = str(store.trace_path(body["channel_trace"]))
            except KeyError:
                raise error(404, f"no uploaded trace {body['channel_trace']!r}", "channel_trace") from None
        reply = _reply_or_raise(await runner.call({"op": "patch_ue", "ue_id": ue_id, "patch": body}))
        seq = reply.get("result", {}).get("seq", 0) if isinstance(reply.get("result"), dict) else 0
        snap2 = await asyncio.to_thread(runner.wait_snapshot, max(seq, runner.snapshot["seq"]), 1.0)
        for u in snap2.get("ues", []):
            if u["id"] == ue_id:
                return public_ue(u)
        return public_ue(find_ue(snap, ue_id))

    @app.put("/background", response_model=dict, tags=["cell"])
    async def put_background(spec: S.BackgroundSpec):
        running_snapshot()
        body = spec.model_dump()
        if spec.profile is not None:
            safe_name(spec.profile, "profile")
            path = store.root / "profiles" / f"{spec.profile}.json"
            if not path.is_file():
                raise error(404, f"no background profile {spec.profile!r} in {path.parent}", "profile")
            body["profile_path"] = str(path)
        reply = _reply_or_raise(await runner.call({"op": "set_background", "background": body},
                                                   timeout_s=SLOW_COMMAND_TIMEOUT_S))
        return reply["result"]

    @app.put("/policy", response_model=S.PolicyOut, tags=["cell"])
    async def put_policy(spec: S.PolicySpec):
        t_request = time.monotonic()
        running_snapshot()
        body = spec.model_dump()
        if spec.name == "learned":
            if not spec.model:
                raise error(422, "policy 'learned' needs a model (POST /models first)", "model")
            try:
                body["model_path"] = str(store.model_path(spec.model))
            except KeyError:
                raise error(404, f"no uploaded model {spec.model!r}", "model") from None
        if spec.name == "replay":
            if not spec.trace:
                raise error(422, "policy 'replay' needs a trace (POST /traces first)", "trace")
            for field in ("trace", "trace_up"):
                name = getattr(spec, field)
                if name is None:
                    continue
                try:
                    body[f"{field}_path"] = str(store.trace_path(name))
                    body[f"{field}_kind"] = store.traces[name].kind
                except KeyError:
                    raise error(404, f"no uploaded trace {name!r}", field) from None
            if spec.trace_up is not None and body["trace_up_kind"] != "mahimahi":
                raise error(422, "trace_up must be an uploaded Mahimahi trace", "trace_up")
        elif spec.trace_up is not None:
            raise error(422, "trace_up is only for policy 'replay'", "trace_up")
        reply = _reply_or_raise(await runner.call({"op": "set_policy", "policy": body,
                                                   "t_request": t_request}))
        return {"name": spec.name, "applied_slot": reply.get("applied_slot"),
                "request_slot": reply.get("request_slot"),
                "applied_after_ms": reply["applied_after_request_s"] * 1e3,
                "round_trip_ms": reply.get("round_trip_s", 0.0) * 1e3,
                "prepare_ms": reply.get("prepare_s", 0.0) * 1e3}

    # ---- uploads ------------------------------------------------------------------------
    @app.post("/models", response_model=S.StoredOut, status_code=201, tags=["uploads"])
    async def upload_model(file: Annotated[UploadFile, File(description=".nemu bundle")],
                           name: Annotated[str | None, Form()] = None):
        model_name = name if name is not None else (file.filename or "").removesuffix(".nemu")
        safe_name(model_name, "name" if name is not None else "file")
        data = await file.read()
        obj = await asyncio.to_thread(store.add_model, model_name, data)
        return obj.as_dict()

    @app.get("/models", response_model=list[S.StoredOut], tags=["uploads"])
    async def list_models():
        return [o.as_dict() for o in store.models.values()]

    @app.post("/traces", response_model=S.StoredOut, status_code=201, tags=["uploads"])
    async def upload_trace(file: Annotated[UploadFile, File(description="NR-Scope CSV or Mahimahi trace")],
                           kind: Annotated[str, Form(description="nrscope or mahimahi")],
                           name: Annotated[str | None, Form()] = None):
        stem = (file.filename or "").rsplit(".", 1)[0]
        trace_name = name if name is not None else stem
        safe_name(trace_name, "name" if name is not None else "file")
        data = await file.read()
        obj = await asyncio.to_thread(store.add_trace, trace_name, kind, data)
        return obj.as_dict()

    @app.get("/traces", response_model=list[S.StoredOut], tags=["uploads"])
    async def list_traces():
        return [o.as_dict() for o in store.traces.values()]

    # ---- metrics and stream ----------------------------------------------------------------
    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"])
    async def metrics():
        snap = runner.snapshot
        key = ("metrics", snap.get("seq", 0))
        hit = cache.get("metrics")
        if hit is not None and hit[0] == key[1]:
            body = hit[1]
        else:
            body = render_metrics(snap).encode()
            cache["metrics"] = (key[1], body)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    def stream_stats(snap: dict) -> dict:
        cell = snap.get("cell") or {}
        return {"type": "stats", "seq": snap.get("seq"), "state": snap.get("state"),
                "mode": snap.get("mode"),
                "scenario_id": snap.get("scenario_id"), "slot": snap.get("slot", 0),
                "t_us": snap.get("t_us", 0), "t_unix": snap.get("t_unix"),
                "policy": (snap.get("policy") or {}).get("name"),
                "prb_utilization": cell.get("prb_utilization", 0.0),
                "slot_lateness_us": snap.get("slot_lateness_us", {}),
                "decision_time_us": snap.get("decision_time_us", {}),
                "ues": [{k: u.get(k) for k in ("id", "name", "throughput_bps", "buffer_bytes",
                                                 "prbs_avg", "mcs", "cqi", "delay_ms_p50",
                                                 "delay_ms_p95", "drops", "background")}
                        for u in snap.get("ues", [])]}

    @app.websocket("/stream")
    async def stream(ws: WebSocket):
        """A full snapshot first (``type: snapshot``), then ``type: stats`` every 100 ms."""
        await ws.accept()
        try:
            snap = runner.snapshot
            first = {"type": "snapshot", "seq": snap.get("seq"), "state": snap.get("state"),
                     "mode": snap.get("mode"), "live": snap.get("live"),
                     "scenario_id": snap.get("scenario_id"), "slot": snap.get("slot", 0),
                     "t_us": snap.get("t_us", 0), "cell": snap.get("cell"),
                     "policy": snap.get("policy"), "background": snap.get("background"),
                     "ues": [public_ue(u) for u in snap.get("ues", [])]}
            await ws.send_text(json.dumps(first))
            next_t = time.monotonic()
            while True:
                next_t += STREAM_INTERVAL_S
                await asyncio.sleep(max(0.0, next_t - time.monotonic()))
                if time.monotonic() - next_t > 1.0:      # fell far behind: resync
                    next_t = time.monotonic()
                await ws.send_text(cached("stream", stream_stats).decode())
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            return

    # ---- dashboard ------------------------------------------------------------------------
    static_dir = resources.files("neuralemu.api") / "static"

    page = _inline_dashboard(static_dir)

    @app.get("/", include_in_schema=False)
    async def dashboard():
        # assets are inlined, so one authenticated GET (``/?token=...``) loads it all
        return Response(page, media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")

    # the last added runs first: the token check, then the body limit, then routing
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(TokenAuthMiddleware, token=token)
    return app


def _inline_dashboard(static_dir) -> bytes:
    """index.html with its CSS and scripts inlined (no second request needs the token)."""
    html = (static_dir / "index.html").read_text(encoding="utf-8")
    css = (static_dir / "style.css").read_text(encoding="utf-8")
    html = html.replace('<link rel="stylesheet" href="static/style.css">', f"<style>\n{css}</style>")
    for script in ("chart.js", "app.js"):
        js = (static_dir / script).read_text(encoding="utf-8")
        html = html.replace(f'<script src="static/{script}"></script>', f"<script>\n{js}</script>")
    return html.encode("utf-8")
