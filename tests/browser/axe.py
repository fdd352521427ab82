"""axe-core in the page, with every rule on (the experimental ones and those off by
default included): the accessibility violations it finds.

axe-core is pinned in tests/axe (package.json + lock; `npm ci` from `.ci/setup --test`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_JS = Path(__file__).resolve().parents[1] / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# Every rule axe-core has, whatever its tags: rules such as label-content-name-mismatch
# (WCAG 2.5.3, "experimental") are off unless named.
RUN_EVERY_RULE = """async () => {
  const rules = Object.fromEntries(window.axe.getRules().map((r) => [r.ruleId, { enabled: true }]));
  return await window.axe.run(document, { rules });
}"""


def violations(page: Page) -> list[dict[str, Any]]:
    """Run axe with every rule on the page as it is now; its violations, briefly."""
    assert AXE_JS.exists(), f"{AXE_JS} is missing: run `source .ci/setup --test`"
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(RUN_EVERY_RULE)
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "count": len(v["nodes"]),
            "nodes": [n["target"] for n in v["nodes"]][:5],
            "summary": v["nodes"][0].get("failureSummary", "") if v["nodes"] else "",
        }
        for v in result["violations"]
    ]


def assert_accessible(page: Page, what: str) -> None:
    """No axe violation on the page, of any impact (printed otherwise)."""
    found = violations(page)
    for violation in found:
        print(f"{what}: {violation}")
    assert not found, f"{what} ({page.url}): {len(found)} axe violations: {found}"
