"""Start xlwings Server for plan-tracker: ``python server/run.py [--host H] [--port P]``.

Loads ``server/.env`` into the environment first, so that the licence key, the function
namespace and ``PLAN_TRACKER_HOME`` are set before xlwings is imported (xlwings reads its
licence key at import), then serves ``xlwings_server.main:main_app`` with this folder as the
xlwings Server project (its ``custom_functions``, ``custom_scripts`` and ``templates``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="plan-tracker xlwings Server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    parser.add_argument("--ssl-keyfile", help="TLS key (Excel requires https except on localhost)")
    parser.add_argument("--ssl-certfile", help="TLS certificate")
    args = parser.parse_args(argv)

    from dotenv import load_dotenv

    load_dotenv(HERE / ".env", override=False)
    os.environ.setdefault("XLWINGS_ON_SERVER", "true")
    os.environ["XLWINGS_PROJECT_DIR"] = str(HERE)
    if not os.environ.get("XLWINGS_LICENSE_KEY"):
        raise SystemExit(
            "缺少 XLWINGS_LICENSE_KEY：请把 .env.example 复制为 .env / XLWINGS_LICENSE_KEY is not "
            "set: copy server/.env.example to server/.env"
        )

    import uvicorn

    uvicorn.run(
        "xlwings_server.main:main_app",
        host=args.host,
        port=args.port,
        reload=args.reload,
        reload_dirs=[str(HERE)] if args.reload else None,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
    )


if __name__ == "__main__":
    main()
