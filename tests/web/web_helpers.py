"""Constants and helpers shared by the web tests (hostile names, users, logging a client in)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

HOSTILE_NAME = "<script>alert('name')</script> {{7*7}}"
HOSTILE_SAMPLE = "S-1.web"  # sample ids are letters, digits and ._+- (the loader refuses the rest)
HOSTILE_MESSAGE = "<img src=x onerror=alert(1)> {{7*7}} connect the cell"
PASSWORDS = {"vera": "viewer-pass-123", "otto": "operator-pass-123", "ada": "admin-pass-1234"}
ROLES = {"vera": "viewer", "otto": "operator", "ada": "admin"}

HOSTILE = f"""\
labctl: 1
name: "{HOSTILE_NAME}"
sample: {{id: "{HOSTILE_SAMPLE}", substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}}
steps:
  - operator: {{message: "{HOSTILE_MESSAGE}",
               cell: {{kind: symmetric, electrolyte: carbonate, separator: celgard, coated: none}}}}
  - ocv: {{duration: 2 min, sample_every: 10 s}}
  - eis: {{frequencies: 100 kHz..1 Hz, points_per_decade: 5, amplitude: 10 mV}}
  - cycle_symmetric: {{current_density: 1 mA/cm^2, capacity: 0.05 mAh/cm^2, cycles: 20, sample_every: 1 s,
                      voltage_limit: 0.5 V}}
"""

LONG = """\
labctl: 1
name: Web live OCV
sample: {id: WEB-LIVE, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}
steps:
  - ocv: {duration: 20 s, sample_every: 0.2 s}
  - wait: {duration: 10 min}
"""




def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def login(client: TestClient, name: str, password: str | None = None) -> str:
    """Log `name` in on `client`; returns the session's CSRF token (read off a page, as a browser would)."""
    form = {"username": name, "password": password or PASSWORDS[name]}
    r = post_login(client, form, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/runs", headers={"accept": "text/html"}).text)


def post_login(client: TestClient, form: dict[str, str], **kw: Any) -> Any:
    """POST the login form as a browser does: with the token of a login page fetched just before."""
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={**form, "csrf": token}, **kw)
