"""The front door (#30 item 8): `GET /` leads to the API reference and the console, and the favicon
is Patron's own, served from the package."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import patron.api.home as home

LINK = re.compile(r'<a href="([^"]+)"')


async def test_the_front_door_links_the_docs_and_the_console_and_each_link_answers(http):
    response = await http.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    links = LINK.findall(response.text)
    assert {"/docs", "/console/"} <= set(links)
    for link in links:
        followed = await http.get(link, follow_redirects=True)
        assert followed.status_code == 200, link
    console = await http.get("/console/", follow_redirects=True)
    assert "login" in str(console.url)  # a newcomer is asked to sign in, not shown an error


async def test_the_favicon_is_patrons_svg_served_from_the_package(http):
    response = await http.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.content == (Path(home.__file__).parent / "static" / "favicon.svg").read_bytes()
    assert ElementTree.fromstring(response.content).tag == "{http://www.w3.org/2000/svg}svg"
    assert "http" not in response.text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    page = await http.get("/")
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in page.text
