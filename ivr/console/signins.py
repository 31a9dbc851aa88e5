"""Sign-ins and sign-outs in the audit log, with the client's address.

``signin`` (success) and ``signout`` are recorded as the user; ``signin.failed`` (wrong
password, unknown or disabled user) and ``signin.throttled`` (the first attempt refused unheard
while failures are slowed; the next ones until another failure are not recorded, so hammering
does not fill the log) as ``anonymous``, naming the user tried only when such a user exists. A
name that is no user is not kept: it may be a password typed into the wrong field. A password
is never stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.admin import Actor, UserRow

if TYPE_CHECKING:
    from ivr.console.app import Ctx

ANONYMOUS = "anonymous"


def audit_sign_in(
    ctx: Ctx, action: str, user: UserRow | None, after: dict[str, Any] | None
) -> None:
    client = ctx.request.client
    address = client.host if client else None
    signed_in = action in ("signin", "signout")
    actor = Actor(user.name if signed_in and user else ANONYMOUS, address)
    details = dict(after or {})
    if user is None:
        details["user"] = "unknown"
    elif user.disabled:
        details["user"] = "disabled"
    ctx.console.admin.record(actor, ctx.now, action, user.name if user else None, details or None)
