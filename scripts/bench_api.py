#!/usr/bin/env python3
"""Benchmark: validate-key requests/s and latency over HTTP vs a bare FastAPI endpoint.

    .venv/bin/python scripts/bench_api.py [--seconds 10] [--connections 16]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Both servers run as separate processes with the same uvicorn settings (server_config: one
worker, log level warning, proxy headers off); the load generator is ``wrk`` (another process),
POSTing the same JSON body to each. The ledger answers for real: key lookup, rules, the signed
answer, the per-IP GCRA limiter (set very high so that it is exercised but never denies), and
the validation record committed (group commit) before the answer is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BODY = {"fingerprint": "bench-machine", "nonce": "n0123456789"}

LUA = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"rps\\": %%f, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f, "
      .. "\\"errors\\": %%d, \\"non2xx\\": %%d}\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_bare(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel, ConfigDict

    from ledger.api.serving import server_config

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")
        key: str
        fingerprint: str | None = None
        nonce: str | None = None

    app = FastAPI()

    def validate(body: Body) -> dict[str, object]:
        return {"valid": True, "code": "VALID", "nonce": body.nonce}

    validate.__annotations__["body"] = Body  # a local class: resolve it before FastAPI reads it
    app.post("/validate")(validate)

    uvicorn.Server(server_config(app, host="127.0.0.1", port=port)).run()


def serve_ledger(port: int, data_dir: str, out: str) -> None:
    import uvicorn

    from ledger.api.app import create_app
    from ledger.api.serving import server_config
    from ledger.bootstrap import bootstrap, cli_actor
    from ledger.domain.values import RequestContext
    from ledger.settings import Settings

    settings = Settings(data_dir=Path(data_dir), validate_rate_limit="1000000/second")
    ledger = bootstrap(settings)
    org, _ = ledger.ensure_first_org("Bench") or (None, None)
    assert org is not None
    actor, ctx = cli_actor(), RequestContext.none()
    policy = ledger.app.create_policy(
        org.id, name="bench", max_machines=5, actor=actor, context=ctx
    )
    issued = ledger.app.issue_license(org.id, policy_id=policy.id, actor=actor, context=ctx)
    ledger.app.activate_machine(
        org.id, issued.license.id, "bench-machine", actor=actor, context=ctx
    )
    ledger.runner.catch_up()
    Path(out).write_text(json.dumps({"org": str(org.id), "key": issued.key}))
    uvicorn.Server(server_config(create_app(ledger=ledger), host="127.0.0.1", port=port)).run()


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("server did not start")


def run_wrk(
    url: str, body: dict[str, str], seconds: int, connections: int, tmp: Path
) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(LUA % json.dumps(body))
    subprocess.run(  # warm-up
        ["wrk", "-t2", f"-c{connections}", "-d2s", "-s", str(script), url],
        check=True,
        capture_output=True,
    )
    res = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    )
    line = re.search(r"^JSON (.*)$", res.stdout, re.M)
    assert line is not None, res.stdout
    figures: dict[str, float] = json.loads(line.group(1))
    return figures


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], env=env, cwd=ROOT)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--postgres", help="run the ledger on this PostgreSQL (a fresh schema)")
    p.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    p.add_argument("--serve-ledger", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve_bare:
        serve_bare(a.serve_bare)
        return
    if a.serve_ledger:
        serve_ledger(int(a.serve_ledger[0]), a.serve_ledger[1], a.serve_ledger[2])
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    schema = None
    if a.postgres:
        import uuid

        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(a.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        env.update(LEDGER_DATABASE_URL=a.postgres, LEDGER_DATABASE_SCHEMA=schema)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results = {}
        bare_port = free_port()
        bare = start(["--serve-bare", str(bare_port)], env)
        try:
            wait_port(bare_port, bare)
            results["bare"] = run_wrk(
                f"http://127.0.0.1:{bare_port}/validate",
                {"key": "key/x.y", **BODY},
                a.seconds,
                a.connections,
                tmp,
            )
        finally:
            bare.terminate()
            bare.wait(30)
        port, info = free_port(), tmp / "ledger.json"
        ledger = start(["--serve-ledger", str(port), str(tmp / "data"), str(info)], env)
        try:
            wait_port(port, ledger)
            setup = json.loads(info.read_text())
            results["validate-key"] = run_wrk(
                f"http://127.0.0.1:{port}/v1/orgs/{setup['org']}/licenses/validate-key",
                {"key": setup["key"], **BODY},
                a.seconds,
                a.connections,
                tmp,
            )
        finally:
            ledger.terminate()
            ledger.wait(30)
    if schema is not None:
        import psycopg

        with psycopg.connect(a.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    bare_r, led = results["bare"], results["validate-key"]
    store = "PostgreSQL" if a.postgres else "SQLite"
    print(f"store: {store}; {a.connections} connections, {a.seconds} s, wrk -t2")
    for name, r in results.items():
        print(
            f"{name:>13}: {r['rps']:9.0f} req/s"
            f"  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
            f"  errors {int(r['errors'])} non-2xx {int(r['non2xx'])}"
        )
    ratio = led["rps"] / bare_r["rps"]
    print(
        f"validate-key / bare FastAPI: {ratio:.0%} (target >= 60%);"
        f" p99 {led['p99_ms']:.2f} ms (target <= 10 ms)"
    )


if __name__ == "__main__":
    main()
