"""The shapes of a chatbot's resolved configuration, as it crosses Redis.

chatbots.selectors builds the configuration from the rows (or a published version,
chatbots.versions) and caches it as JSON in Redis; the worker's turn runner, the context
providers, the tool loop and the widget's API read it back. JSON comes back as plain dicts, so
these are TypedDicts (not dataclasses): mypy checks every `config[...]`/`flow[...]` subscript
against what the builder writes, and nothing changes at run time.

Django-free on purpose (only typing): the runner's modules and the AI clients' callers can name
the shapes without loading an app. No `from __future__ import annotations` here: Python 3.11's
TypedDict sees NotRequired only in evaluated annotations, and the keys it reports at run time
(__required_keys__, __optional_keys__) are what chatbots/tests/test_config_types.py checks the
cached configuration against.
"""

from typing import Any, NotRequired, TypedDict


class EndpointConfig(TypedDict):
    """A flow's AI endpoint (chatbots.models.AIEndpoint)."""

    id: int
    name: str
    kind: str  # AIEndpoint.Kind: flowise, openai or builtin
    base_url: str
    # The encrypted key (chatbots.secrets.decrypt opens it). A published version's content
    # leaves it out; version_config puts the current one back before a turn reads it.
    api_key_stored: NotRequired[str]
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    pool_size: int


class EmbeddingConfig(TypedDict):
    """The endpoint and model a Pinecone knowledge base embeds questions with."""

    endpoint_id: int
    base_url: str
    api_key_stored: NotRequired[str]  # as EndpointConfig's
    model: str
    timeout: float


class KnowledgeBaseConfig(TypedDict):
    """A flow's knowledge base (chatbots.models.KnowledgeBase)."""

    id: int
    name: str
    kind: str  # KnowledgeBase.Kind: builtin or pinecone
    index_name: str
    host: str
    namespace: str
    api_key_stored: NotRequired[str]  # as EndpointConfig's; knowledge.retrieval decrypts
    embedding: EmbeddingConfig | None


class FlowTemplate(TypedDict):
    """A flow's prompt template: its name and the bot's overrides of its variables; a turn's
    configuration (chatbot_turn_config_get) and a published version also carry the template's
    `text` and default variables (`defaults`)."""

    name: str
    overrides: dict[str, Any]
    text: NotRequired[str]
    defaults: NotRequired[dict[str, Any]]


class FlowConfig(TypedDict):
    """One enabled flow (chatbots.models.Flow) with its endpoint, knowledge base and template."""

    id: int
    name: str
    role: str  # Flow.Role: answer, router, extractor, analysis, image
    is_main: bool
    routing_key: str
    applies_to: str
    target: str  # the Flowise chatflow id or the model; the endpoint's default model if blank
    top_k: int
    namespace: str  # the flow's Pinecone namespace, else its knowledge base's
    endpoint: EndpointConfig
    knowledge_base: KnowledgeBaseConfig | None
    template: FlowTemplate | None  # None also when a turn's template is gone


class TextRuleConfig(TypedDict):
    """A text rule the runner applies to the answer's tokens (conversations.textrules)."""

    kind: str
    find: str
    replace: str


class ToolsBinding(TypedDict):
    """The bot's tool allow-list and bounds (tools.models.ChatbotTools); a bound left empty
    (None) is the setting's default (TOOLS_MAX_STEPS, TOOLS_TURN_SECONDS, TOOLS_CALL_TIMEOUT)."""

    tools: list[str]
    max_steps: int | None
    max_seconds: int | None
    call_timeout: int | None


class ChatbotBase(TypedDict):
    """The bot's own columns (chatbots.selectors._base_config): identity, widget, support."""

    id: int
    shop_id: int
    uuid: str
    public_id: str
    name: str
    language: str
    search_config: str  # the PostgreSQL text search configuration of the language
    active: bool
    greeting: str
    image_upload_enabled: bool
    widget_key: str
    allowed_origins: list[str]
    timezone: str
    opening_hours: dict[str, Any]
    contact_email: str
    contact_phone: str
    routing_mode: str  # Chatbot.RoutingMode: sequential or parallel
    message_rate_limit: int | None
    topics: list[str]
    publishing: str


class ChatbotConfig(ChatbotBase):
    """A chatbot's resolved configuration (chatbots.selectors.chatbot_config_get)."""

    flows: list[FlowConfig]
    text_rules: list[TextRuleConfig]
    # Only a published version's configuration has these: its tool binding (None when the bot
    # had none; without the key tools.loop reads the rows' binding) and its number.
    tools: NotRequired[ToolsBinding | None]
    version: NotRequired[int]


class PromptTemplateConfig(TypedDict):
    """A shop's prompt template as cached (chatbots.selectors.prompt_template_get)."""

    name: str
    text: str
    variables: dict[str, Any]


class ChatbotAccess(TypedDict):
    """What a customer's token may still do (chatbots.selectors.chatbot_access_get)."""

    active: bool
    allowed_origins: list[str]
