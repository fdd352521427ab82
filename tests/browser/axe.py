"""axe-core in the page: the accessibility violations of impact serious or critical.

axe-core is pinned in tests/axe (package.json + lock; `npm ci` from `.ci/setup --test`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_JS = Path(__file__).resolve().parents[1] / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SEVERE = ("serious", "critical")


def severe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe on the page as it is now; its serious and critical violations, briefly."""
    assert AXE_JS.exists(), f"{AXE_JS} is missing: run `source .ci/setup --test`"
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await window.axe.run(document)")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
            "summary": v["nodes"][0].get("failureSummary", "") if v["nodes"] else "",
        }
        for v in result["violations"]
        if v["impact"] in SEVERE
    ]


def assert_accessible(page: Page, what: str) -> None:
    """No serious or critical axe violation on the page (printed otherwise)."""
    found = severe_violations(page)
    for violation in found:
        print(f"{what}: {violation}")
    assert not found, f"{what} ({page.url}): {len(found)} serious/critical axe violations: {found}"
