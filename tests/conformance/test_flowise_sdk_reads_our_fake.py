"""`flowise-sdk` (Flowise's own JavaScript client, from npm) against our fake Flowise: it checks
`GET /api/v1/chatflows-streaming/<id>` first, then reads the prediction stream line by line
(ai_protocols.md §2, "Reference parsers"). If our fake framed events in a way the real server
does not, this client would drop or mangle them (issue #25)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conformance.npm import npm_package
from tests.fakes.flowise import FakeFlowise

FLOW = "7f3c1c0e-2b0a-4a52-9c1e-2f6a0c1d9b11"

SCRIPT = r"""
const { FlowiseClient } = require("flowise-sdk");
const [baseUrl, chatflowId, apiKey, streaming] = process.argv.slice(2);
(async () => {
  const client = new FlowiseClient({ baseUrl, apiKey });
  const result = await client.createPrediction({
    chatflowId, question: "Where is my order?", streaming: streaming === "true",
    chatId: "sdk-chat-1",
  });
  if (streaming === "true") {
    for await (const event of result) console.log(JSON.stringify(event));
  } else {
    console.log(JSON.stringify(result));
  }
})().catch((err) => { console.error(String(err)); process.exit(3); });
"""


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    modules = npm_package("npm-sdk", "flowise-sdk@1.0.9")
    script = tmp_path_factory.mktemp("sdk") / "read.js"
    script.write_text(SCRIPT)
    return modules, script


def run_sdk(sdk, url: str, *, streaming: bool, api_key: str = "") -> list[dict]:
    modules, script = sdk
    result = subprocess.run(
        ["node", str(script), url, FLOW, api_key, "true" if streaming else "false"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NODE_PATH": str(modules), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_the_sdk_reads_our_stream_event_by_event(sdk):
    with FakeFlowise(
        answer="Your order 1001 has shipped.", tokens_per_second=0, heartbeat_interval=0.01
    ) as flowise:
        flowise.configure(source_documents=[{"pageContent": "Shipping FAQ", "metadata": {}}])
        events = run_sdk(sdk, flowise.url, streaming=True)

    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-1] == "end"
    assert "".join(e["data"] for e in events if e["event"] == "token") == (
        "Your order 1001 has shipped."
    )
    [docs] = [e["data"] for e in events if e["event"] == "sourceDocuments"]
    assert docs[0]["pageContent"] == "Shipping FAQ"
    [meta] = [e["data"] for e in events if e["event"] == "metadata"]
    assert meta["chatId"] == "sdk-chat-1" and meta["chatMessageId"]
    assert events[-1]["data"] == "[DONE]"


def test_the_sdk_reads_our_json_answer(sdk):
    with FakeFlowise(answer="Open 9-17.") as flowise:
        [answer] = run_sdk(sdk, flowise.url, streaming=False)

    assert answer["text"] == "Open 9-17."
    assert answer["chatId"] == "sdk-chat-1"


def test_the_sdk_sees_a_wrong_key_as_flowise_reports_it_inside_the_stream(sdk):
    with FakeFlowise(api_key="right-key-123456") as flowise:
        events = run_sdk(sdk, flowise.url, streaming=True, api_key="wrong")

    assert [e["event"] for e in events] == ["error", "end"]
    assert "Unauthorized" in events[0]["data"]
