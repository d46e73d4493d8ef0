"""What the browser tests share beside the ``browser`` fixture (conftest.py): a watch for console errors and CSP
violations on a page (either fails a test: the page must load and work without both)."""

from __future__ import annotations

from typing import Any

WATCH = """(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
})()"""


def watched(page: Any) -> list[str]:
    """Console errors and CSP violations of ``page`` from now on (the list fills as they happen)."""
    found: list[str] = []
    page.add_init_script(WATCH)
    page.on("console", lambda m: found.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(f"pageerror: {e}"))
    return found


def csp_violations(page: Any) -> list[str]:
    return list(page.evaluate("() => window.__csp || []"))
