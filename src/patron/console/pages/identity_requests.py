"""The review queue of identity changes, oldest first, and a reviewer's decision on one."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron import limits
from patron.api.context import utc_now
from patron.console import sessions
from patron.console.guards import action, page
from patron.console.sessions import Level, Signed
from patron.console.web import NOT_FOUND, Paging, Refused, at, flash_to, paging, render, request_id, services, start_of
from patron.customers import identity_review
from patron.customers.identity_requests import PENDING, DecisionRefused, IdentityRequest, own_road
from patron.customers.model import IDENTIFIER_LABELS
from patron.customers.ports import ConsoleStorage

QUEUE = "/console/identity-requests"


@dataclass(frozen=True)
class QueuePage:
    requests: list[IdentityRequest]
    names: dict[int, tuple[str, str]]  # each request's customer: first and last name
    labels: dict[str, str]
    paging: Paging
    reason_limit: int
    own: set[int | None]  # the requests the user stands behind: Reject only


def own_requests(signed: Signed, requests: list[IdentityRequest]) -> set[int | None]:
    """The pending requests the signed-in user stands behind, which they may reject but not approve:
    the page offers them Reject alone."""
    return {
        r.id for r in requests if r.status == PENDING and own_road(signed.org, r, signed.login)
    }


@page(requires="read")
async def identity_requests(request: Request, signed: Signed) -> Response:
    storage: ConsoleStorage = services(request).storage
    org_id, start = signed.org.org_id, start_of(request)
    # The page, its count and its customers' names of one moment.
    async with storage.snapshot() as unit:
        waiting = await unit.identity_requests.pending(org_id, identity_review.PAGE, start)
        count = await unit.identity_requests.count_pending(org_id)
        names = await unit.console.customer_names(org_id, sorted({r.customer_id for r in waiting}))
    data = QueuePage(
        requests=waiting, names=names, labels=IDENTIFIER_LABELS,
        paging=paging(lambda first: at(QUEUE, first), start, len(waiting), count, identity_review.PAGE),
        reason_limit=limits.REASON, own=own_requests(signed, waiting),
    )
    return render(request, "identity_requests.html", signed, data, pending=count)


def _decided(request_id: int, decided: identity_review.Decision, approving: bool) -> tuple[str, Level]:
    """The decision as said: green when done as asked; red when an approval was turned into a
    rejection (the value changed or was taken meanwhile)."""
    if decided.applied:
        return f"Request {request_id} approved: the change is applied.", "ok"
    reason = decided.request.decision_reason
    if approving:
        return f"Request {request_id} could not be approved and is rejected" + (f": {reason}" if reason else "."), "refused"
    return f"Request {request_id} rejected" + (f": {reason}" if reason else "."), "ok"


@action(requires="review")
async def decide(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    raw: str = request.path_params["request_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Refused(404, NOT_FOUND)
    back = sessions.safe_next(form.get("back") or QUEUE)
    decision = form.get("decision")
    reason = form.get("reason", "").strip()
    if decision not in ("approve", "reject"):
        return flash_to(request, back, "Choose Approve or Reject.", "refused")
    if not reason:
        return flash_to(request, back, "Give a reason for the decision: it is kept in the audit trail.", "refused")
    try:
        decided = await identity_review.decide(
            signed.org, int(raw), decision == "approve", signed.login, reason, services(request).storage, utc_now(),
            trace_id=request_id(request),
        )
    except DecisionRefused as refused:
        said = str(refused)
        return flash_to(request, back, f"Request {raw} was not decided: {said}{'' if said.endswith('.') else '.'}", "refused")
    return flash_to(request, back, *_decided(int(raw), decided, decision == "approve"))


ROUTES = [
    Route("/identity-requests", identity_requests, methods=["GET"]),
    Route("/identity-requests/{request_id}/decision", decide, methods=["POST"]),
]
