"""The front door: `GET /`, a page that leads to the API reference and the console, and the favicon."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

# Served from the package, so that a browser's tab shows it without internet.
FAVICON = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()
FAVICON_PATH = "/favicon.ico"
# Browsers ask for /favicon.ico whatever the page says; an SVG is what they get there too
# (the page's link says its type), so one file serves both.
ICON_CACHE = "public, max-age=86400"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Patron</title>
  <link rel="icon" href="{FAVICON_PATH}" type="image/svg+xml">
  <style>
    body {{ font: 16px/1.5 system-ui, sans-serif; color: #1f2933; background: #f5f7fa; margin: 0; }}
    main {{ max-width: 36rem; margin: 4rem auto; padding: 0 1.5rem; }}
    h1 {{ display: flex; align-items: center; gap: 0.6rem; margin-bottom: 0.25rem; }}
    h1 img {{ width: 2rem; height: 2rem; }}
    p.lead {{ color: #52606d; margin-top: 0; }}
    ul {{ list-style: none; padding: 0; }}
    li {{ background: #fff; border: 1px solid #cbd2d9; border-radius: 8px; margin: 0.75rem 0; padding: 0.9rem 1.1rem; }}
    a {{ color: #1d4ed8; font-weight: 600; }}
    a:hover {{ color: #1e3a8a; }}
    :focus-visible {{ outline: 3px solid #b45309; outline-offset: 2px; }}
    span {{ display: block; color: #52606d; }}
  </style>
</head>
<body>
  <main>
    <h1><img src="{FAVICON_PATH}" alt="">Patron</h1>
    <p class="lead">A loyalty-CRM core: customers, their identifiers and their points.</p>
    <ul>
      <li><a href="/docs">API reference</a><span>Every operation, with examples you can run from the page.</span></li>
      <li><a href="/console/">Member-care console</a><span>Find customers, edit them and review identity changes (sign-in with an org file's console user).</span></li>
      <li><a href="/openapi.json">OpenAPI document</a><span>The same reference as JSON, for code generators.</span></li>
      <li><a href="/health">Health</a><span>Whether this process is up.</span></li>
    </ul>
  </main>
</body>
</html>
"""


async def home_page(request: Request) -> Response:
    return HTMLResponse(_PAGE)


async def favicon(request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": ICON_CACHE})


def home_routes() -> list[Route]:
    return [Route("/", home_page, methods=["GET"]), Route(FAVICON_PATH, favicon, methods=["GET"])]
