"""Drives the published teambattles-sdk, unchanged, against a live ticketd.

Run by the API suite (tests/api/teambattles.rs) with the server's base URL
and three keys in the environment: TB_BASE_URL (".../api/v1"), TB_KEY (a
customer's), TB_OTHER_KEY (another customer's of the same workspace). It
exits 0 when every check passes and prints what it checked; any failed
check raises, and the traceback names it.

The SDK's own defects are worked around as its users must: the tickets
collection has an empty URL template, so list and create go through
`with_url`; `str()` of an API error raises, so errors are read through
`.error` and `.response_status_code`.
"""

import asyncio
import os

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration

from teambattles_sdk.client import create_teambattles_client
from teambattles_sdk.generated.models.add_ticket_message_request_body import (
    AddTicketMessageRequestBody,
)
from teambattles_sdk.generated.models.create_ticket_request_body import CreateTicketRequestBody
from teambattles_sdk.generated.models.create_ticket_request_body_category import (
    CreateTicketRequestBody_category,
)
from teambattles_sdk.generated.models.error import Error
from teambattles_sdk.generated.models.ticket_detail_priority import TicketDetail_priority
from teambattles_sdk.generated.models.ticket_detail_status import TicketDetail_status

BASE = os.environ["TB_BASE_URL"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def expect_error(error, status, code):
    """An exception the SDK raised for an error response: its class, status and code."""
    assert isinstance(error, Error), f"{type(error).__name__} is not the SDK's Error"
    assert isinstance(error, APIError)
    assert error.response_status_code == status, (error.response_status_code, status)
    assert error.error == code, (error.error, code)
    assert isinstance(error.details, str) and error.details, error.details


async def raises(call):
    try:
        await call
    except Exception as error:  # noqa: BLE001 - the class is what is checked
        return error
    raise AssertionError("the call did not fail")


async def main():
    client = create_teambattles_client(os.environ["TB_KEY"], base_url=BASE)
    other = create_teambattles_client(os.environ["TB_OTHER_KEY"], base_url=BASE)
    checked = []

    # Create, through with_url (the SDK's tickets builder has no template).
    create = CreateTicketRequestBody()
    create.subject = "Match did not start"
    create.description = "The lobby hangs at 99%."
    create.category = CreateTicketRequestBody_category.Technical_bug
    created = await client.tickets.with_url(f"{BASE}/tickets").post(create)
    assert created.success is True
    assert isinstance(created.ticket_id, str) and created.ticket_id
    assert isinstance(created.ticket_number, int), created.ticket_number
    assert isinstance(created.timestamp, str) and created.timestamp
    ticket_id = created.ticket_id
    checked.append("create")

    # Reply, keyed, and the same key again: one message.
    config = RequestConfiguration()
    config.headers.add("Idempotency-Key", "sdk-reply-1")
    reply = AddTicketMessageRequestBody()
    reply.content = "Still seeing it \u00e9 \"q\" \U0001f600"
    first = await client.tickets.by_ticket_id(ticket_id).messages.post(reply, config)
    again = await client.tickets.by_ticket_id(ticket_id).messages.post(reply, config)
    assert first.success is True and isinstance(first.message_id, str)
    assert again.message_id == first.message_id
    checked.append("reply (keyed, replayed)")

    # Reply with an image: mint the URL with the SDK, send the bytes with
    # any HTTP client, as TeamBattles documents.
    minted = await client.uploads.image_url.post()
    assert isinstance(minted.upload_url, str) and minted.upload_url.startswith("http")
    sent = httpx.post(minted.upload_url, content=PNG, headers={"Content-Type": "image/png"})
    assert sent.status_code == 200, sent.text
    storage_id = sent.json()["storageId"]
    with_image = AddTicketMessageRequestBody()
    with_image.content = "Here is a screenshot."
    with_image.images = [storage_id]
    await client.tickets.by_ticket_id(ticket_id).messages.post(with_image)
    checked.append("reply with an image")

    # Get: every field with the type the SDK reads.
    detail = await client.tickets.by_ticket_id(ticket_id).get()
    assert detail.id == ticket_id
    assert detail.ticket_number == created.ticket_number
    assert detail.subject == "Match did not start"
    assert detail.description == "The lobby hangs at 99%."
    assert detail.category == "technical_bug"
    assert detail.status == TicketDetail_status.Open, detail.status
    assert detail.priority == TicketDetail_priority.Medium, detail.priority
    for stamp in (detail.created_at, detail.updated_at):
        assert stamp is not None and isinstance(stamp.string, str) and stamp.string, stamp
    assert detail.resolved_at is None and detail.closed_at is None
    assert isinstance(detail.timestamp, str)
    contents = [message.content for message in detail.messages]
    assert contents == [reply.content, "Here is a screenshot."], contents
    assert all(message.is_own_message is True for message in detail.messages)
    assert all(message.is_system is False for message in detail.messages)
    assert all(message.created_at.string for message in detail.messages)
    checked.append("get")

    # List, through with_url, two pages.
    second = CreateTicketRequestBody()
    second.subject = "Second"
    second.description = "Another one."
    second.category = CreateTicketRequestBody_category.Billing
    await client.tickets.with_url(f"{BASE}/tickets").post(second)
    page = await client.tickets.with_url(f"{BASE}/tickets?limit=1").get()
    assert len(page.data) == 1 and page.has_more is True
    cursor = page.next_cursor.string
    assert isinstance(cursor, str) and cursor
    assert page.data[0].subject == "Second"
    assert isinstance(page.data[0].ticket_number, int)
    assert page.data[0].status is not None and page.data[0].priority is not None
    rest = await client.tickets.with_url(f"{BASE}/tickets?limit=1&cursor={cursor}").get()
    assert [t.id for t in rest.data] == [ticket_id] and rest.has_more is False
    assert rest.next_cursor is None
    checked.append("list (two pages)")

    # The SDK's error classes: 404, 403, 400.
    expect_error(
        await raises(client.tickets.by_ticket_id("tkt_01hxa3b4c5d6e7f8g9h0j1k2m3").get()),
        404,
        "TICKET_NOT_FOUND",
    )
    expect_error(await raises(other.tickets.by_ticket_id(ticket_id).get()), 404, "TICKET_NOT_FOUND")
    trespass = AddTicketMessageRequestBody()
    trespass.content = "Not my ticket."
    expect_error(
        await raises(other.tickets.by_ticket_id(ticket_id).messages.post(trespass)),
        403,
        "TICKET_ACCESS_DENIED",
    )
    too_long = AddTicketMessageRequestBody()
    too_long.content = "x" * 2001
    expect_error(
        await raises(client.tickets.by_ticket_id(ticket_id).messages.post(too_long)),
        400,
        "error_invalid_request",
    )
    conflict = AddTicketMessageRequestBody()
    conflict.content = "Another body under the same key."
    expect_error(
        await raises(client.tickets.by_ticket_id(ticket_id).messages.post(conflict, config)),
        409,
        "error_idempotency_key_conflict",
    )
    nobody = create_teambattles_client("tb_not_a_key", base_url=BASE)
    expect_error(await raises(nobody.tickets.by_ticket_id(ticket_id).get()), 401, "error_api_key_invalid")
    checked.append("errors (404, 403, 400, 409, 401)")

    print("teambattles-sdk checks passed:", ", ".join(checked))


asyncio.run(main())
