"""Recovery suggestions for operators: one line per error category and, where it helps, per code.

Written for the person on call: what probably happened and the first thing to check or do.
"""

from __future__ import annotations

# Per category: the default suggestion, then code-specific ones.
SUGGESTIONS: dict[str, dict[str, str]] = {
    "network": {
        "": "A network call failed. Check that the service's host is reachable from the workers "
        "(DNS, firewall, proxy settings) and look at the connection pool page for timeouts.",
        "UPSTREAM_CONNECT_TIMEOUT": "The AI service did not accept a connection in time. Check "
        "that its base URL is right and the host is up; if it is overloaded, raise the "
        "endpoint's connect timeout in the admin.",
        "UPSTREAM_TIMEOUT": "The AI service stopped sending data. Check its own logs and load; "
        "if answers are legitimately slow, raise the endpoint's read timeout in the admin.",
        "UPSTREAM_UNAVAILABLE": "The AI service answered with a server error or refused the "
        "connection. Check its status page or logs; the widget asks customers to retry.",
        "UPSTREAM_TRUNCATED": "The answer stream was cut off mid-way (connection reset). Check "
        "proxies/load balancers between the workers and the AI service for idle timeouts.",
    },
    "upstream_ai": {
        "": "The AI service returned an error. Open the AI call log for this turn and check the "
        "endpoint's configuration (URL, key, chatflow id or model).",
        "UPSTREAM_RATE_LIMITED": "The AI service is rate limiting us. Lower the chatbots' message "
        "rate limits, raise the plan's quota, or spread bots over more endpoints/keys.",
        "UPSTREAM_AUTH": "The AI service refused our key. Enter a valid API key on the AI "
        "endpoint in the admin and use “Test connection”.",
        "UPSTREAM_BAD_REQUEST": "The AI service rejected the request. Check the flow's chatflow "
        "id / model name and its prompt template variables.",
        "UPSTREAM_BAD_RESPONSE": "The AI service sent something we could not parse. Check that "
        "the endpoint kind (Flowise / OpenAI-compatible) matches the server.",
        "UPSTREAM_STREAM_ERROR": "The AI service reported an error while streaming. Check the "
        "chatflow in Flowise (its nodes, credentials and vector store).",
        "UPSTREAM_EMPTY": "The AI service answered with nothing. Check the chatflow or model "
        "and its prompt; an empty knowledge base can also cause this.",
        "UPSTREAM_TOO_LARGE": "The request or attachment exceeded the AI service's limits. "
        "Lower HISTORY_MESSAGES_FOR_AI or the image size limit.",
        "UPSTREAM_ABORTED": "The AI call was stopped (customer cancel or router decision). "
        "Nothing to do unless this happens for every turn.",
    },
    "knowledge_base": {
        "": "A knowledge-base lookup failed. Use “Test connection” on the knowledge base in the "
        "admin; check the Pinecone key, index name, host and namespace.",
    },
    "template": {
        "": "A prompt template or flow setup problem. Check the chatbot's flows, main flow and "
        "template assignments in the admin; a missing variable renders as empty text.",
        "NO_ANSWER_FLOW": "This chatbot has no enabled main flow. Enable or create one in the "
        "admin (Chatbots → the bot → Flows).",
    },
    "database": {
        "": "A database operation failed. Check PostgreSQL is up and not out of connections or "
        "disk (GET /health), then look at the stack for the failing query.",
    },
    "streaming": {
        "": "A turn's stream failed. Check the turn's events in the admin and the worker logs "
        "around its time (search by turn id).",
        "WORKER_LOST": "The worker running this turn stopped sending heartbeats (killed, out of "
        "memory or restarted). Check the turns worker's logs and memory; the customer was told "
        "to ask again.",
        "NOT_STARTED": "No worker picked this turn up. Check that a worker consumes the `turns` "
        "queue (operators' page) and that the queue is not stuck.",
        "TURN_TIMEOUT": "The turn hit TURN_TOTAL_TIMEOUT. Check the AI service's speed; raise the "
        "limit only if long answers are expected.",
        "INTERNAL_ERROR": "A bug in the turn runner. The stack is in the worker log for this "
        "turn id; report it with the turn id.",
    },
    "order_tracking": {
        "": "An order lookup failed. Check the shop's order source in the admin (URL, token, "
        "platform) and whether the shop's API is reachable.",
    },
    "image": {
        "": "An image could not be processed. Check the upload's type and size limits and the "
        "chatbot's image flow.",
    },
    "auth": {
        "": "Authentication or a credential failed. Check the key or token configured for this "
        "integration, and whether it was rotated without updating the admin.",
    },
    "rate_limit": {
        "": "A rate limit was hit. If customers hit it legitimately, raise the chatbot's message "
        "rate limit; if one client floods, block it at the proxy.",
    },
    "tool": {
        "TOOL_TIMEOUT": "The tool did not answer within its time limit (Chatbot tools → call "
        "timeout, TOOLS_CALL_TIMEOUT). Check the MCP server or HTTP endpoint behind it, or raise "
        "the limit; the model answered without the result.",
        "TOOL_REFUSED": "The model asked for a tool that is not on the bot's allow-list; nothing "
        "ran. If the bot should have it, tick it under Chatbot tools.",
        "": "A tool call failed and the model was told so; the customer still got an answer. "
        "The message says which tool and why; try it under Tools → Try a tool.",
    },
    "worker": {
        "": "A background task failed. Check the stack below and the worker logs for this task "
        "id; scheduled jobs run again at their next time.",
    },
}


def suggestion_for(category: str, code: str = "") -> str:
    table = SUGGESTIONS.get(category) or {}
    return table.get(code) or table.get("") or "Check the stack and the logs around this time."
