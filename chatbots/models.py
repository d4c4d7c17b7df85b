"""Who a chatbot is: its endpoints, flows, knowledge, prompt templates and text rules."""

from __future__ import annotations

import re
import secrets
import uuid
import zoneinfo

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from aiclients.flowise import chatflow_id_accepted
from chatbots.secrets import EncryptedSecretField, SecretValue
from outbound.policy import url_validate

# Language code -> PostgreSQL text search configuration used for the builtin knowledge base.
LANGUAGES = {
    "da": ("Danish", "danish"),
    "en": ("English", "english"),
    "sv": ("Swedish", "swedish"),
    "no": ("Norwegian", "norwegian"),
    "de": ("German", "german"),
    "nl": ("Dutch", "dutch"),
    "fr": ("French", "french"),
    "es": ("Spanish", "spanish"),
    "fi": ("Finnish", "finnish"),
}
LANGUAGE_CHOICES = [(code, name) for code, (name, _) in LANGUAGES.items()]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def new_widget_key() -> str:
    return "pk_" + secrets.token_urlsafe(24)


def validate_origin(value: str) -> None:
    if value == "*":
        return
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", value):
        raise ValidationError(
            f"“{value}” is not an origin. Write it like https://www.example.com "
            "(scheme and host, optional port, no path or trailing slash)."
        )


def validate_opening_hours(value: dict) -> None:
    if not isinstance(value, dict):
        raise ValidationError(
            'Opening hours must be an object such as {"mon": [["09:00", "17:00"]]}.'
        )
    for day, spans in value.items():
        if day not in WEEKDAYS:
            raise ValidationError(f"“{day}” is not a weekday; use one of {', '.join(WEEKDAYS)}.")
        if not isinstance(spans, list):
            raise ValidationError(f"Opening hours for {day} must be a list of [from, to] pairs.")
        for span in spans:
            if (
                not isinstance(span, list | tuple)
                or len(span) != 2
                or not all(isinstance(t, str) and _HHMM.match(t) for t in span)
            ):
                raise ValidationError(f'{day}: each span must be ["HH:MM", "HH:MM"], got {span!r}.')
            if span[0] >= span[1]:
                raise ValidationError(f"{day}: the span {span[0]}–{span[1]} ends before it starts.")


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"“{value}” is not a time zone name such as Europe/Copenhagen."
        ) from exc


class Chatbot(models.Model):
    class RoutingMode(models.TextChoices):
        SEQUENTIAL = "sequential", "Sequential (router first, then the chosen flow)"
        PARALLEL = "parallel", "Parallel (start the main flow while the router decides)"

    # PROTECT: a shop with chatbots cannot be deleted by accident; move or delete them first.
    shop = models.ForeignKey("accounts.Shop", on_delete=models.PROTECT, related_name="chatbots")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    public_id = models.SlugField(
        "chatbot id",
        max_length=64,
        unique=True,
        help_text="Short name used by the widget and the API, e.g. “vinhuset”. Lowercase letters, "
        "digits and dashes.",
    )
    name = models.CharField(max_length=200, help_text="The shop's name as customers know it.")
    language = models.CharField(
        max_length=5,
        choices=LANGUAGE_CHOICES,
        default="da",
        help_text="Language of the widget texts and of the knowledge-base search.",
    )
    active = models.BooleanField(
        default=True, help_text="Inactive chatbots do not answer; the widget shows nothing."
    )
    greeting = models.CharField(
        max_length=500,
        blank=True,
        help_text="First message the widget shows, e.g. “Hej! Hvordan kan jeg hjælpe?”.",
    )
    image_upload_enabled = models.BooleanField(
        default=False, help_text="Let customers send photos (for example of a damaged item)."
    )
    widget_key = models.CharField(
        max_length=64,
        unique=True,
        default=new_widget_key,
        help_text="Public key put in the shop's script tag. Not a secret, but it only works "
        "from the allowed origins below.",
    )
    allowed_origins = ArrayField(
        models.CharField(max_length=255, validators=[validate_origin]),
        default=list,
        blank=True,
        help_text="Web sites that may embed this chatbot, comma-separated, e.g. "
        "https://www.vinhuset.dk,https://vinhuset.dk.",
    )
    timezone = models.CharField(
        max_length=64, default="Europe/Copenhagen", validators=[validate_timezone]
    )
    opening_hours = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_opening_hours],
        help_text="When people answer chats, in the time zone above. A day with no times, or "
        "ticked “Closed”, is closed; the second range is for a split day (e.g. a lunch break). "
        "Outside these hours the widget offers a ticket instead of live handoff.",
    )
    contact_email = models.EmailField(
        blank=True, help_text="Shown when the bot cannot answer a question."
    )
    contact_phone = models.CharField(max_length=50, blank=True)
    routing_mode = models.CharField(
        max_length=12, choices=RoutingMode.choices, default=RoutingMode.SEQUENTIAL
    )
    message_rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10000)],
        help_text="Messages per minute per conversation. Empty = the system default (60).",
    )
    topics = ArrayField(
        models.CharField(max_length=100),
        default=list,
        blank=True,
        help_text="Topics used to classify conversations, comma-separated, e.g. "
        "levering,retur,produkt,ordre.",
    )

    class Publishing(models.TextChoices):
        INSTANT = "instant", "Instant (every save is live at once)"
        REVIEWED = "reviewed", "Reviewed (saves make a draft; customers get the published version)"

    publishing = models.CharField(
        max_length=10,
        choices=Publishing.choices,
        default=Publishing.INSTANT,
        help_text="Reviewed: what you save is a draft; customers keep the published version "
        "until someone publishes the draft (docs/versions.md). Switching to reviewed publishes "
        "the current configuration as a version.",
    )
    # The version customers get while publishing is reviewed (chatbots.versions). Set only by
    # publishing and rollback, never by a form or a history revert (signals keep it on raw saves).
    live_version = models.ForeignKey(
        "ChatbotVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    api_users = models.ManyToManyField(
        "auth.User",
        blank=True,
        related_name="api_chatbots",
        help_text="Server-to-server API users (JWT) allowed to use this chatbot. Staff users may "
        "use every chatbot.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["public_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def search_config(self) -> str:
        return LANGUAGES.get(self.language, ("", "simple"))[1]


class AIEndpoint(models.Model):
    """An AI service flows talk to; OpenAI-compatible ones may carry the flows' default model."""

    class Kind(models.TextChoices):
        FLOWISE = "flowise", "Flowise"
        OPENAI = "openai", "OpenAI-compatible (OpenAI, Azure, vLLM, Ollama, llama.cpp)"
        BUILTIN = "builtin", "Builtin (knowledge-base search, no AI service)"

    shop = models.ForeignKey("accounts.Shop", on_delete=models.PROTECT, related_name="ai_endpoints")
    name = models.CharField(max_length=100, help_text="E.g. “Flowise production”.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    base_url = models.URLField(
        blank=True,
        help_text="Flowise: https://flowise.example.com — OpenAI-compatible: the URL ending in "
        "/v1. Builtin: leave empty.",
    )
    api_key = EncryptedSecretField(
        "API key", blank=True, help_text="Stored encrypted; never shown again after saving."
    )
    connect_timeout = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(60)]
    )
    read_timeout = models.FloatField(
        default=60.0,
        validators=[MinValueValidator(1), MaxValueValidator(600)],
        help_text="Longest silence allowed from the AI service, in seconds, before giving up.",
    )
    total_timeout = models.FloatField(
        default=180.0,
        validators=[MinValueValidator(1), MaxValueValidator(1800)],
        help_text="Longest a whole answer may take, in seconds.",
    )
    pool_size = models.PositiveIntegerField(
        default=200,
        validators=[MinValueValidator(1), MaxValueValidator(5000)],
        help_text="Connections each worker process may keep open to this service. A streaming "
        "answer holds one for its whole length.",
    )
    default_model = models.CharField(
        max_length=200,
        blank=True,
        help_text="OpenAI-compatible only: the model used by flows that name none of their own, "
        "e.g. gpt-4o-mini. “Test connection” fetches the names the server offers. Flowise "
        "flows name their chatflow id in the chatbot's flow row instead.",
    )
    # Filled by "Test connection" (chatbots.services), offered as choices for default_model.
    known_models = models.JSONField(default=list, blank=True, editable=False)
    known_models_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI endpoint"
        ordering = ["name"]
        constraints = [
            # Invariant: a builtin endpoint never talks to the network.
            models.CheckConstraint(
                condition=~Q(kind="builtin") | Q(base_url=""),
                name="builtin_endpoint_has_no_url",
                violation_error_message="A builtin endpoint has no URL.",
            ),
            # Invariant: a network endpoint has somewhere to go.
            models.CheckConstraint(
                condition=Q(kind="builtin") | ~Q(base_url=""),
                name="network_endpoint_has_url",
                violation_error_message="Flowise and OpenAI-compatible endpoints need a URL.",
            ),
            # Names are per shop: two shops may both have "Flowise production".
            models.UniqueConstraint(
                fields=["shop", "name"],
                name="unique_endpoint_name_per_shop",
                violation_error_message="This shop already has an AI endpoint with this name.",
            ),
        ]

    def __str__(self) -> str:
        # Read in the flows' endpoint dropdown: the name, then the kind unless the name says it,
        # then the model a flow gets when it names none.
        short_kind = KIND_SHORT_LABELS.get(self.kind, self.kind)
        label = self.name
        if self.kind not in self.name.lower():
            label = f"{label} — {short_kind}"
        if self.default_model:
            label = f"{label} · {self.default_model}"
        return label

    def clean(self) -> None:
        if self.default_model and self.kind != self.Kind.OPENAI:
            raise ValidationError(
                {
                    "default_model": "Only OpenAI-compatible endpoints have a default model. "
                    "A Flowise flow names its chatflow id in the chatbot's flow row; builtin "
                    "needs no model."
                }
            )
        if self.pk and self.kind == self.Kind.OPENAI and not self.default_model:
            relying = list(
                Flow.objects.filter(endpoint_id=self.pk, target="")
                .select_related("chatbot")
                .order_by("chatbot__public_id", "name")[:6]
            )
            if relying:
                names = ", ".join(str(flow) for flow in relying[:5])
                more = " and more" if len(relying) > 5 else ""
                raise ValidationError(
                    {
                        "default_model": f"Flows {names}{more} name no model of their own and "
                        "use this default. Give them a model in their chatbot's flow rows first, "
                        "or keep a default here."
                    }
                )
        if self.kind == self.Kind.BUILTIN:
            errors = {}
            if self.base_url:
                errors["base_url"] = (
                    "A builtin endpoint has no URL: it answers from the knowledge base."
                )
            # A key left from before a switch to builtin cannot be used: dropped, not refused.
            self.api_key = SecretValue()
            if errors:
                raise ValidationError(errors)
        elif not self.base_url:
            raise ValidationError({"base_url": "Enter the address of the AI service."})
        if self.base_url and self.base_url.endswith("/"):
            self.base_url = self.base_url.rstrip("/")
        if self.base_url:
            url_validate(base_url=self.base_url)  # not this machine nor its private networks


KIND_SHORT_LABELS = {
    AIEndpoint.Kind.FLOWISE: "Flowise",
    AIEndpoint.Kind.OPENAI: "OpenAI-compatible",
    AIEndpoint.Kind.BUILTIN: "builtin",
}


class KnowledgeBase(models.Model):
    class Kind(models.TextChoices):
        PINECONE = "pinecone", "Pinecone index"
        BUILTIN = "builtin", "Builtin (entries stored here, PostgreSQL full-text search)"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="knowledge_bases")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BUILTIN)
    index_name = models.CharField(max_length=200, blank=True, help_text="Pinecone index name.")
    host = models.CharField(
        max_length=255, blank=True, help_text="Pinecone index host (from the Pinecone console)."
    )
    api_key = EncryptedSecretField(
        "API key", blank=True, help_text="Pinecone API key, stored encrypted."
    )
    namespace = models.CharField(max_length=200, blank=True)
    control_url = models.URLField(
        default="https://api.pinecone.io",
        help_text="Pinecone control-plane URL; change only for testing.",
    )
    # Retrieval settings (knowledge app): the embedding model turns questions (and, for a
    # builtin base, its chunks) into vectors; a Pinecone base needs one to be queried at all.
    embedding_endpoint = models.ForeignKey(
        "AIEndpoint",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="embedding_knowledge_bases",
        limit_choices_to={"kind": "openai"},
        help_text="An OpenAI-compatible endpoint serving /v1/embeddings. Empty: full-text search "
        "only (builtin); a Pinecone base then reaches only Flowise flows.",
    )
    embedding_model = models.CharField(
        max_length=200, blank=True, help_text="e.g. text-embedding-3-small"
    )
    chunk_size = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(200), MaxValueValidator(8000)],
        help_text="Characters per chunk of an uploaded document (about 4 characters a token).",
    )
    chunk_overlap = models.PositiveIntegerField(
        default=150,
        validators=[MaxValueValidator(2000)],
        help_text="Characters a chunk repeats from the end of the one before it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chatbot", "name"]
        constraints = [
            # Serves the flow editor's lookup of a bot's knowledge base by name.
            models.UniqueConstraint(fields=["chatbot", "name"], name="unique_kb_name_per_chatbot"),
        ]

    def __str__(self) -> str:
        # Read in the flows' knowledge-base dropdown, like AIEndpoint's.
        return f"{self.name} — {'Pinecone' if self.kind == self.Kind.PINECONE else 'builtin'}"

    def clean(self) -> None:
        if self.kind == self.Kind.PINECONE and not self.index_name:
            raise ValidationError({"index_name": "A Pinecone knowledge base needs its index name."})
        if self.chunk_overlap >= self.chunk_size:
            raise ValidationError({"chunk_overlap": "The overlap must be smaller than the chunk."})
        if self.embedding_endpoint_id and not self.embedding_model:
            raise ValidationError({"embedding_model": "Name the embedding model to use."})
        if self.kind == self.Kind.BUILTIN:
            # Only what applies to the chosen kind is checked. Pinecone settings left over
            # from before a switch to builtin are dropped rather than refused: they cannot be
            # used, and an error about a key box the user never touched helps nobody.
            self.index_name = ""
            self.host = ""
            self.api_key = SecretValue()
        else:
            host = self.host.strip()
            url_validate(
                host=host if "://" in host or not host else f"https://{host}",
                control_url=self.control_url,
            )


class KnowledgeEntry(models.Model):
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="entries"
    )
    title = models.CharField(max_length=300)
    text = models.TextField()
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    # Maintained by chatbots.services.knowledge_entries_reindex in the chatbot's language.
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "knowledge entries"
        ordering = ["knowledge_base", "title"]
        indexes = [
            # Serves the builtin answerer's full-text query (search_vector @@ query).
            GinIndex(fields=["search_vector"], name="knowledge_entry_search"),
        ]

    def __str__(self) -> str:
        return self.title


class PromptTemplate(models.Model):
    shop = models.ForeignKey(
        "accounts.Shop", on_delete=models.PROTECT, related_name="prompt_templates"
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    text = models.TextField(
        help_text="The prompt. Use {{variable}} for values filled in per chatbot or per message, "
        "e.g. {{shop_name}}, {{language}}, {{context}}."
    )
    variables = models.JSONField(
        default=dict,
        blank=True,
        help_text='Default values of the template\'s variables, e.g. {"tone": "friendly"}.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Names are per shop; also serves the runner's look-up of a template by shop and name.
            models.UniqueConstraint(
                fields=["shop", "name"],
                name="unique_template_name_per_shop",
                violation_error_message="This shop already has a prompt template with this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def variable_names(self) -> set[str]:
        return set(TEMPLATE_VARIABLE.findall(self.text))

    def clean(self) -> None:
        if not isinstance(self.variables, dict):
            raise ValidationError({"variables": "Variables must be an object of name: value."})


class Flow(models.Model):
    class Role(models.TextChoices):
        ANSWER = "answer", "Answer (streams to the customer)"
        ROUTER = "router", "Router (picks which answer flow handles the message)"
        EXTRACTOR = "extractor", "Extractor (returns JSON, e.g. order number and email)"
        ANALYSIS = "analysis", "Analysis (topic and score after the conversation)"
        IMAGE = "image", "Image (describes an uploaded photo)"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="flows")
    name = models.SlugField(
        max_length=50,
        help_text="main, flow2, flow3, flow4, apiflow, metadata, metadata2 or any name.",
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ANSWER)
    is_main = models.BooleanField(
        default=False,
        help_text="The answer flow used when the router picks nothing else. Exactly one per chatbot.",
    )
    routing_key = models.SlugField(
        max_length=50,
        blank=True,
        help_text="The router's label that selects this flow, e.g. product, productfilter, order.",
    )
    applies_to = models.SlugField(
        max_length=50,
        blank=True,
        help_text="Extractor flows only: the routing key of the answer flow whose questions this "
        "extractor reads first (e.g. order, productfilter). Empty = every answer flow.",
    )
    endpoint = models.ForeignKey(AIEndpoint, on_delete=models.PROTECT, related_name="flows")
    target = models.CharField(
        "chatflow id or model",
        max_length=200,
        blank=True,
        help_text="Flowise: the chatflow id (a UUID), required. OpenAI-compatible: the model; "
        "empty = the endpoint's default model. Builtin: leave empty.",
    )
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.SET_NULL, null=True, blank=True, related_name="flows"
    )
    namespace = models.CharField(
        max_length=200, blank=True, help_text="Pinecone namespace; empty = the knowledge base's."
    )
    top_k = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["chatbot", "-is_main", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["chatbot", "name"], name="unique_flow_name_per_chatbot"
            ),
            # Invariant: the router's label selects at most one flow.
            models.UniqueConstraint(
                fields=["chatbot", "routing_key"],
                condition=~Q(routing_key=""),
                name="unique_routing_key_per_chatbot",
                violation_error_message="Another flow of this chatbot already has this routing key.",
            ),
            # Invariant: at most one main flow per chatbot (at least one: Chatbot admin formset).
            models.UniqueConstraint(
                fields=["chatbot"],
                condition=Q(is_main=True),
                name="one_main_flow_per_chatbot",
                violation_error_message="This chatbot already has a main flow.",
            ),
            models.CheckConstraint(
                condition=Q(is_main=False) | Q(role="answer"),
                name="main_flow_is_an_answer_flow",
                violation_error_message="Only an answer flow can be the main flow.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chatbot.public_id}/{self.name}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.is_main and self.role != self.Role.ANSWER:
            errors["is_main"] = "Only an answer flow can be the main flow."
        if self.routing_key and self.role != self.Role.ANSWER:
            errors["routing_key"] = "Only answer flows are chosen by a routing key."
        if self.applies_to and self.role != self.Role.EXTRACTOR:
            errors["applies_to"] = "Only extractor flows apply to another flow."
        endpoint = self.endpoint if self.endpoint_id else None
        if endpoint is not None:
            if endpoint.kind == AIEndpoint.Kind.FLOWISE:
                # Flowise's own rule: it holds a streaming request for any other id unanswered.
                if not chatflow_id_accepted(self.target):
                    errors["target"] = "A Flowise flow needs its chatflow id (a UUID from Flowise)."
                else:
                    if uuid.UUID(self.target).int == 0 and self.enabled:
                        # The legacy import's placeholder: the flow is not finished yet.
                        errors["target"] = (
                            "Enter the flow's real chatflow id from Flowise before enabling it."
                        )
            elif (
                endpoint.kind == AIEndpoint.Kind.OPENAI
                and not self.target
                and not endpoint.default_model
            ):
                errors["target"] = (
                    f"Enter the model name, e.g. gpt-4o-mini, or give the endpoint “{endpoint.name}” "
                    "a default model."
                )
            elif endpoint.kind == AIEndpoint.Kind.BUILTIN:
                if self.role not in (self.Role.ANSWER, self.Role.ROUTER, self.Role.ANALYSIS):
                    errors["endpoint"] = (
                        "The builtin endpoint can answer, route and analyse, but not "
                        f"act as a {self.get_role_display().split(' (')[0].lower()} flow."
                    )
                if (
                    self.knowledge_base_id
                    and self.knowledge_base.kind != KnowledgeBase.Kind.BUILTIN
                ):
                    errors["knowledge_base"] = (
                        "The builtin endpoint can only search a builtin knowledge base."
                    )
        if (
            self.knowledge_base_id
            and self.chatbot_id
            and self.knowledge_base.chatbot_id != self.chatbot_id
        ):
            errors["knowledge_base"] = "That knowledge base belongs to another chatbot."
        if endpoint is not None and self.chatbot_id and endpoint.shop_id != self.chatbot.shop_id:
            errors["endpoint"] = "That AI endpoint belongs to another shop."
        if errors:
            raise ValidationError(errors)


# Template variables that carry each message's own data. An override may replace a template
# default or a built-in such as shop_name, but never these: the answer would stop being about
# what the customer asked. The runner fills them last (chatbots.services.prompt_values).
TURN_VARIABLES = {
    "question": "the customer's message",
    "context": "the passages and facts found for it",
    "extracted": "what the extractor flow read from it",
    "order": "the order that was looked up",
    "transcript": "the conversation being analysed",
    "instructions": "the analysis instructions",
}


class TemplateAssignment(models.Model):
    """Which prompt template a chatbot's flow uses, with per-chatbot variable overrides."""

    chatbot = models.ForeignKey(
        Chatbot, on_delete=models.CASCADE, related_name="template_assignments"
    )
    flow = models.OneToOneField(Flow, on_delete=models.CASCADE, related_name="template_assignment")
    template = models.ForeignKey(
        PromptTemplate, on_delete=models.PROTECT, related_name="assignments"
    )
    overrides = models.JSONField(
        default=dict,
        blank=True,
        help_text="Values for this chatbot that replace the template's defaults, e.g. "
        '{"shop_name": "Vinhuset"}.',
    )

    class Meta:
        ordering = ["chatbot", "flow__name"]

    def __str__(self) -> str:
        return f"{self.flow} → {self.template}"

    def clean(self) -> None:
        if not isinstance(self.overrides, dict):
            raise ValidationError({"overrides": "Overrides must be an object of name: value."})
        if self.flow_id and self.chatbot_id and self.flow.chatbot_id != self.chatbot_id:
            raise ValidationError({"flow": "That flow belongs to another chatbot."})
        if self.template_id and self.chatbot_id and self.template.shop_id != self.chatbot.shop_id:
            raise ValidationError({"template": "That prompt template belongs to another shop."})
        reserved = sorted(set(self.overrides) & set(TURN_VARIABLES))
        if reserved:
            raise ValidationError(
                {
                    "overrides": "These variables cannot be overridden because each message fills "
                    "them in: "
                    + "; ".join(f"{name} ({TURN_VARIABLES[name]})" for name in reserved)
                    + ". Remove them from the overrides."
                }
            )
        if self.template_id:
            unknown = set(self.overrides) - self.template.variable_names()
            if unknown:
                raise ValidationError(
                    {
                        "overrides": "The template has no variable named "
                        + ", ".join(sorted(unknown))
                        + f"; it uses {', '.join(sorted(self.template.variable_names())) or 'none'}."
                    }
                )


class TextRule(models.Model):
    """Rewrites applied to every answer as it streams (e.g. the shop's house style)."""

    class Kind(models.TextChoices):
        EXCLAMATION = "exclamation", "Replace exclamation marks"
        REPLACE = "replace", "Find and replace"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="text_rules")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.REPLACE)
    find = models.CharField(
        max_length=200, blank=True, help_text="Text to find (exact, case-sensitive)."
    )
    replace = models.CharField(
        max_length=200,
        blank=True,
        help_text="Replacement. For exclamation marks the default is a full stop.",
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Rules apply in this order.")

    class Meta:
        ordering = ["chatbot", "position", "id"]

    def __str__(self) -> str:
        if self.kind == self.Kind.EXCLAMATION:
            return f"! → {self.replace or '.'}"
        return f"{self.find} → {self.replace}"

    def clean(self) -> None:
        if self.kind == self.Kind.REPLACE and not self.find:
            raise ValidationError({"find": "Enter the text to find."})
        if self.kind == self.Kind.EXCLAMATION and self.find:
            raise ValidationError({"find": "Exclamation rules need no search text."})


class ChatbotVersion(models.Model):
    """A published configuration of a chatbot: what its customers got from `created_at` until the
    next publish. Append-only: a rollback publishes a copy of an older version as a new one.

    `config` is the turn configuration (chatbots.selectors) as it was, templates' text inlined,
    plus the bot's tool bindings, without any secret: API keys are read from the current rows
    at run time (chatbots.versions.version_config), so a rotated key applies to live at once.
    """

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField()
    note = models.CharField(max_length=500, blank=True)
    # Which version this one copies, for a rollback; null for a published draft.
    copied_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Published although the latest check run of this draft had failures, knowingly.
    confirmed_failing_checks = models.BooleanField(default=False)
    failing_checks = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chatbot", "-number"]
        constraints = [
            # Also serves "the bot's versions, newest first" and the next number's lookup.
            models.UniqueConstraint(
                fields=["chatbot", "number"], name="unique_version_number_per_chatbot"
            ),
        ]

    def __str__(self) -> str:
        return f"version {self.number}"


class CheckRun(models.Model):
    """One press of "Run checks": every check of the bot's check set (quality.AnswerCheck) asked
    of the draft and of the live version through preview conversations and the real runner
    (chatbots.checkruns). `draft_fingerprint` says which draft it judged: a publish of exactly
    that draft with failures needs a confirmation."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="check_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    draft_fingerprint = models.CharField(max_length=64)
    # The live version compared with; null when nothing is published (instant bots: the draft
    # is what customers get, so only the draft is asked).
    live_version = models.ForeignKey(
        ChatbotVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["chatbot", "-created_at"]
        indexes = [
            # Serves "the bot's latest run" (the Versions page and the publish guard).
            models.Index(fields=["chatbot", "-created_at"], name="checkrun_chatbot_recent"),
        ]

    def __str__(self) -> str:
        return f"check run {self.pk} of {self.chatbot_id}"


class CheckResult(models.Model):
    """One check's answer from one side (draft or live) of a run, with each rule's verdict."""

    class Side(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    check_id_ref = models.PositiveIntegerField(null=True, blank=True)  # quality.AnswerCheck pk
    question = models.TextField()
    side = models.CharField(max_length=5, choices=Side.choices)
    conversation_id = models.UUIDField(null=True, blank=True)
    answer = models.TextField(blank=True)
    turn_status = models.CharField(max_length=10, blank=True)
    error = models.TextField(blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    rules = models.JSONField(default=list, blank=True)  # [{rule, passed, why, checked}]
    passed = models.BooleanField(default=False)

    class Meta:
        ordering = ["run", "check_id_ref", "side"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "check_id_ref", "side"], name="one_result_per_check_side"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side}: {self.question[:50]}"
