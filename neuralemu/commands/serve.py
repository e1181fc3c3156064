"""``neuralemu serve``: the REST API, the /stream WebSocket and the web dashboard."""

from __future__ import annotations

import os

from neuralemu.errors import InputError


def _serve(args) -> int:
    import uvicorn

    from neuralemu.api.app import create_app
    from neuralemu.api.security import is_loopback_host

    token = args.token or os.environ.get("NEURALEMU_API_TOKEN") or None
    if not is_loopback_host(args.host) and not token:
        raise InputError("serve", "binding to a non-loopback address needs a bearer token "
                         "(--token or NEURALEMU_API_TOKEN)", field="--host")
    if not 0 < args.port < 65536:
        raise InputError("serve", f"port out of range: {args.port}", field="--port")
    if args.live and os.geteuid() != 0:
        raise InputError("serve", "--live needs root (network namespaces, eBPF, NFQUEUE)",
                         field="--live")
    if args.live and args.unpaced:
        raise InputError("serve", "--live runs on the wall clock; drop --unpaced", field="--unpaced")
    live_defaults = {"prefix": args.prefix, "base_delay_ms": args.base_delay_ms,
                     "realtime": args.realtime}
    app = create_app(token=token, data_dir=args.data_dir, engine_mode=args.engine,
                     pace=not args.unpaced, api_nice=args.api_nice if args.engine == "process" else 0,
                     default_mode="live" if args.live else "offline", live_defaults=live_defaults,
                     realtime=max(0, args.realtime) if os.geteuid() == 0 else 0)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                ws_max_size=1 << 16, timeout_graceful_shutdown=3)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="run the REST API and web dashboard",
        description="Serve the REST control API (OpenAPI docs at /docs), the /stream "
                    "WebSocket, Prometheus /metrics and the dashboard at /. Loopback by "
                    "default; any other address requires --token.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8600, help="TCP port (default 8600)")
    p.add_argument("--token", default=None,
                   help="bearer token required on every request (or NEURALEMU_API_TOKEN)")
    p.add_argument("--data-dir", default=None,
                   help="where uploaded models and traces are kept (default: a temp folder)")
    p.add_argument("--engine", choices=("process", "thread"), default="process",
                   help="run the engine in a child process (default) or a thread")
    p.add_argument("--api-nice", type=int, default=10,
                   help="process mode: lower the API process's priority by this nice increment so "
                        "that HTTP load yields the CPU to the engine (default 10; 0 = off)")
    p.add_argument("--unpaced", action="store_true",
                   help="offline: run slots as fast as possible instead of in real time")
    p.add_argument("--live", action="store_true",
                   help="start scenarios live by default (real packets through the netns testbed; "
                        "root). Without it, POST /scenarios/{id}/start {\"mode\": \"live\"} "
                        "still starts one live")
    p.add_argument("--prefix", default="ne", help="live: testbed prefix (default ne)")
    p.add_argument("--base-delay-ms", type=float, default=0.0,
                   help="live: fixed one-way delay added to every packet (default 0)")
    p.add_argument("--realtime", type=int, default=10,
                   help="SCHED_FIFO priority of the slot loop (live loop thread; offline, the "
                        "engine's slot loop) where permitted; 0 = normal scheduling (default 10)")
    p.add_argument("--log-level", default="warning",
                   choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=_serve)
