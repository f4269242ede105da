"""Fuzz the Markdown renderer through a live ticketd.

Run by scripts/fuzz-api, with the Python of its virtual environment (where
schemathesis brought hypothesis). Generates Markdown dense in the characters
that make structure (quotes, list markers, table pipes, emphasis, brackets,
backticks, indentation), posts each as a reply with bodyFormat markdown, and
checks that the server answers 201 with html no longer than its bound: eight
times the body's length in bytes, plus 1 KiB.

    python scripts/fuzz-markdown.py BASE_URL TOKEN TICKET_ID EXAMPLES
"""

import json
import sys
import urllib.error
import urllib.request

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BASE, TOKEN, TICKET, EXAMPLES = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

# Pieces that open or close Markdown structure, and some text between them.
PIECES = st.sampled_from(
    ["> ", "- ", "* ", "1. ", "  ", "    ", "\t", "\n", "\n\n", "|", "-|", ":-:|",
     "**", "*", "_", "~~", "`", "```", "[", "](http://x)", "]", "(", ")", "<", ">",
     "<http://a>", "[r]: http://example.com/", "[a][r]", "![i](http://x/i.png)",
     "&amp;", "&", "#", "x", "word ", "\r\n", "\\", "<b>", "<!--", "-->"]
)
REPEATS = st.integers(min_value=1, max_value=3000)
BODIES = st.lists(st.tuples(PIECES, REPEATS), min_size=1, max_size=12).map(
    lambda parts: "".join(piece * count for piece, count in parts)
)


def reply(body):
    request = urllib.request.Request(
        f"{BASE}/api/v2/support/tickets/{TICKET}/messages",
        data=json.dumps({"message": body, "bodyFormat": "markdown"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(BODIES)
def test_markdown_renders_within_its_bound(body):
    body = body[:25000]
    if not body.strip() or "\0" in body:
        return
    status, message = reply(body)
    if status == 400:
        # A body the API refuses (too long once counted as the API counts
        # it): a client error, never a server one.
        assert message.get("code") == "invalid_request", message
        return
    assert status == 201, (status, message)
    limit = 8 * len(body.encode()) + 1024
    assert len(message["html"].encode()) <= limit, (len(message["html"]), limit)


if __name__ == "__main__":
    test_markdown_renders_within_its_bound()
    print(f"markdown: {EXAMPLES} generated bodies rendered within their bound")
