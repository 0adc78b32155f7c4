"""Security headers every answer carries.

Added in one place for the app, the outer middleware (api/tracing.py RequestContext), and by the
two paths that answer without it: reads by id (api/point_reads.py) and the server's own refusals
(api/protocol.py). The policy allows what the app's own pages load, all of it served by the app
(no CDN, no inline script): `/status` and `/docs`.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
)
