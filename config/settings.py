"""All settings, read once from the environment through django-environ.

Every setting has a safe default for the embedded development mode and is listed in README.md.
"""

import datetime as dt
import ipaddress
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"

env = environ.Env()
# Generated secrets for the embedded mode (written by ./run); real environment variables win.
if (DATA_DIR / "local.env").exists():
    env.read_env(str(DATA_DIR / "local.env"), overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-only-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL clients should use for links we hand out (streaming_url, websocket_url).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files: no CDN
    "channels",
    "reversion",
    "django_celery_beat",
    "corsheaders",
    "axes",
    "rest_framework_simplejwt.token_blacklist",  # used-up refresh tokens (config/auth_api.py)
    "accounts",
    "chatbots",
    "conversations",
    "orders",
    "analytics",
    "monitoring",
    "helpdesk",
    "images",
    "privacy",
    "inbox",
    "knowledge",
    "tools",
    "quality",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ApiGuardMiddleware",
    "config.input_guard.InputGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.SyncCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # the lockout page (config/login_lockout.py)
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/chatbot")
}
# A libpq-style "?host=/socket/dir" (the embedded server listens on a Unix socket only).
if not DATABASES["default"].get("HOST") and "host" in DATABASES["default"].get("OPTIONS", {}):
    DATABASES["default"]["HOST"] = DATABASES["default"]["OPTIONS"].pop("host")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="") or None}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"]["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
# A bounded connection pool per process (psycopg_pool). Under ASGI every request and every
# WebSocket database call runs in a thread of its own, so without a pool connections follow the
# requests in flight: each pays a new backend (CONN_MAX_AGE=0) or leaves one idle behind
# (CONN_MAX_AGE>0) until PostgreSQL refuses more (bench/findings.md, item 1). The pool bounds a
# process to DATABASE_POOL_MAX connections and reuses them; a caller waits up to
# DATABASE_POOL_TIMEOUT seconds for one and then gets the 503 envelope.
if env.bool("DATABASE_POOL", default=True):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=20),
        # Without a pool this wait is the connect timeout; keep them one concept by default.
        "timeout": env.float(
            "DATABASE_POOL_TIMEOUT", default=DATABASES["default"]["OPTIONS"]["connect_timeout"]
        ),
        "max_idle": 300,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker ----------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="cb"),
        "TIMEOUT": 300,
    }
}
CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer: the default RedisChannelLayer silently drops messages past its
        # capacity and adds seconds of latency under load (DESIGN.md §4).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Several servers shard the channel layer and the turns' event logs by turn
        # (EVENT_REDIS_URLS; conversations.streaming.event_host).
        "CONFIG": {
            "hosts": env.list("EVENT_REDIS_URLS", default=[]) or [REDIS_URL],
            "prefix": env.str("CHANNEL_PREFIX", default="cbws"),
        },
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "conversations.tasks.run_turn": {"queue": "turns"},
    "analytics.tasks.*": {"queue": "analytics"},
    "monitoring.tasks.*": {"queue": "maintenance"},
    "privacy.tasks.*": {"queue": "maintenance"},
    "conversations.tasks.reap_stale_turns": {"queue": "maintenance"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
# Redis re-delivers a task still running after the visibility timeout: keep it well above the
# longest turn (TURN_TOTAL_TIMEOUT) so that no turn ever runs twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Secrets at rest ----------------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation: docs/secrets.md).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# --- Caches of chatbot configuration ---------------------------------------------------------------
CHATBOT_CONFIG_CACHE_SECONDS = env.int("CHATBOT_CONFIG_CACHE_SECONDS", default=300)
PROMPT_TEMPLATE_CACHE_SECONDS = env.int("PROMPT_TEMPLATE_CACHE_SECONDS", default=600)

# --- Admin user created by ./run ------------------------------------------------------------------
ADMIN_USERNAME = env.str("ADMIN_USERNAME", default="admin")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")

# --- Sign-in: lockout after failed passwords (django-axes; docs/access.md "Hardening") ----------
# Axes checks every authenticate() (admin login, POST /api/auth/token) before the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "accounts.backends.ShopRoleBackend",  # roles grant model permissions (docs/access.md)
]
# This many failed passwords for one username from one address lock that pair out for
# LOGIN_COOLOFF_MINUTES (each further attempt restarts the wait); a success clears the count, so
# a person who mistypes now and then is never locked out, and nobody else is locked by them.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.login_lockout.client_ip"  # the client address, as rate limits
AXES_LOCKOUT_CALLABLE = "config.login_lockout.lockout_response"
# Failures are kept (the lockout needs them); successful sign-ins are not logged by axes, so no
# table grows without bound (the audit log records sign-ins).
AXES_DISABLE_ACCESS_LOG = True
# An owner's link inviting someone to their shop works once, for this many days
# (accounts/invitations.py).
INVITATION_MAX_AGE_DAYS = env.int("INVITATION_MAX_AGE_DAYS", default=7)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# The product's own catalogues: what customers read in the bot's language (config.errors).
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media"))
MEDIA_URL = "media/"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.authentication.ApiJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # JSON only; endpoints that take files (upload-image) add the multipart parser themselves.
    "DEFAULT_PARSER_CLASSES": ["config.parsers.SafeJSONParser"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": dt.timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": dt.timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # A refresh answers a new refresh token and blacklists the one sent (config/auth_api.py).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # Tokens carry a digest of the password hash: a password change ends them all.
    "CHECK_REVOKE_TOKEN": True,
}

# Request bodies under /api/: refused with 413 from Content-Length before they are read.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=256 * 1024)
# Endpoints that take an image (base64 in JSON is 4/3 of the file, plus the other fields).
API_UPLOAD_MAX_BODY_BYTES = env.int(
    "API_UPLOAD_MAX_BODY_BYTES",
    default=4 * -(-env.int("IMAGE_MAX_BYTES", default=10 * 1024 * 1024) // 3) + 256 * 1024,
)
API_BODY_LIMITS = {
    "/api/upload-image": API_UPLOAD_MAX_BODY_BYTES,
    "/api/process-message": API_UPLOAD_MAX_BODY_BYTES,
}
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_BODY_LIMITS.values())

# CORS: browsers may call the API from any chatbot's allowed origins (checked per bot in views).
CORS_URLS_REGEX = r"^/(api|ws)/.*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-conversation-token",
    "x-session-id",
    "x-widget-key",
)
CORS_EXPOSE_HEADERS = ("Retry-After",)

# Production hardening (`PRODUCTION=true`; see docs/deployment.md); off for the local http stack.
PRODUCTION = env.bool("PRODUCTION", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE = PRODUCTION
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
if env.bool("BEHIND_TLS_PROXY", default=PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SPECTACULAR_SETTINGS = {
    "TITLE": "Chatbot backend API",
    "DESCRIPTION": (
        "REST and streaming API for the shop chat widget and operators. The WebSocket, "
        "Server-Sent Events and Socket.IO protocols are described in the "
        "[AsyncAPI document](/api/asyncapi.yaml)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ and /api/redoc/ load their scripts from our own static files (whitenoise).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets of fields named "mode" (a helpdesk handoff's; POST …/person's answer):
    # named here, or the schema warns and `check --deploy` fails.
    "ENUM_NAME_OVERRIDES": {
        "HandoffModeEnum": ["live", "ticket"],
        "PersonModeEnum": ["live", "helpdesk"],
    },
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "config.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Conversations and turns -------------------------------------------------------------------
CONVERSATION_TOKEN_MAX_AGE = env.int("CONVERSATION_TOKEN_MAX_AGE", default=7 * 24 * 3600)
MESSAGE_MAX_CHARS = env.int("MESSAGE_MAX_CHARS", default=4000)
HISTORY_MESSAGES_FOR_AI = env.int("HISTORY_MESSAGES_FOR_AI", default=20)
# First token goes out at once; later tokens are coalesced into frames this often (ms) or size.
STREAM_FRAME_INTERVAL_MS = env.int("STREAM_FRAME_INTERVAL_MS", default=50)
STREAM_FRAME_MAX_CHARS = env.int("STREAM_FRAME_MAX_CHARS", default=2000)
# Frames grow up to this interval while the worker's loop runs late (streaming.RelayLag);
# equal to STREAM_FRAME_INTERVAL_MS turns the adaptation off.
STREAM_FRAME_INTERVAL_MAX_MS = env.int("STREAM_FRAME_INTERVAL_MAX_MS", default=100)
# Events are appended to PostgreSQL in batches this often (seconds).
STREAM_DB_FLUSH_SECONDS = env.float("STREAM_DB_FLUSH_SECONDS", default=0.5)
# How long a turn's Redis event log outlives the turn (PostgreSQL keeps it after that).
STREAM_REDIS_TTL_SECONDS = env.int("STREAM_REDIS_TTL_SECONDS", default=3600)
STREAM_REDIS_MAXLEN = env.int("STREAM_REDIS_MAXLEN", default=20000)
# A `: ping` comment on an idle SSE stream this often, so proxies keep it open and a stream
# whose client is gone is noticed; each also re-reads the log for a frame the bus lost.
SSE_HEARTBEAT_SECONDS = env.float("SSE_HEARTBEAT_SECONDS", default=15.0)
# Open SSE streams one client address may hold in one server process (0 = no cap); past it 429.
SSE_MAX_STREAMS_PER_ADDRESS = env.int("SSE_MAX_STREAMS_PER_ADDRESS", default=200)
# An answer (any one AI call's text) longer than this many characters is cut there: the upstream
# is stopped and the turn fails with UPSTREAM_TOO_LARGE, keeping the part streamed so far.
ANSWER_MAX_CHARS = env.int("ANSWER_MAX_CHARS", default=100_000)
# The tool loop of an answer (docs/tools.md): rounds of tool calls, seconds for all of them and
# for one call (a bot may override these three in its tools), characters of one tool result
# the model is shown (the rest is cut).
TOOLS_MAX_STEPS = env.int("TOOLS_MAX_STEPS", default=4)
TOOLS_TURN_SECONDS = env.int("TOOLS_TURN_SECONDS", default=60)
TOOLS_CALL_TIMEOUT = env.int("TOOLS_CALL_TIMEOUT", default=15)
TOOLS_RESULT_MAX_CHARS = env.int("TOOLS_RESULT_MAX_CHARS", default=8000)
# Daphne aborts a WebSocket connection whose client leaves more than this many bytes unread in
# the server process (config/daphne_ws.py); the widget reconnects and resumes. 0 = no bound.
WS_SEND_BUFFER_MAX_BYTES = env.int("WS_SEND_BUFFER_MAX_BYTES", default=4 * 1024 * 1024)
# A WebSocket that has not shown a conversation token this long after opening is closed (4401).
WS_AUTH_TIMEOUT_SECONDS = env.float("WS_AUTH_TIMEOUT_SECONDS", default=5.0)
# Per client address and server process (config/socket_limits.py): open WebSockets, and those
# not yet authenticated; past either the handshake is refused (403). 0 = no cap.
WS_MAX_SOCKETS_PER_ADDRESS = env.int("WS_MAX_SOCKETS_PER_ADDRESS", default=200)
WS_MAX_UNAUTHENTICATED_PER_ADDRESS = env.int("WS_MAX_UNAUTHENTICATED_PER_ADDRESS", default=20)
# Daphne reads a request's line and headers within HTTP_HEADER_TIMEOUT_SECONDS and its body within
# HTTP_BODY_TIMEOUT_SECONDS, plus a second per HTTP_BODY_MIN_BYTES_PER_SECOND bytes received;
# else 408 and the connection is closed (config/daphne_http.py). 0 = no deadline.
HTTP_HEADER_TIMEOUT_SECONDS = env.float("HTTP_HEADER_TIMEOUT_SECONDS", default=20.0)
HTTP_BODY_TIMEOUT_SECONDS = env.float("HTTP_BODY_TIMEOUT_SECONDS", default=20.0)
HTTP_BODY_MIN_BYTES_PER_SECOND = env.int("HTTP_BODY_MIN_BYTES_PER_SECOND", default=500)
# Upper bound for one whole turn, whatever the endpoint says; keep below CELERY_VISIBILITY_TIMEOUT.
TURN_TOTAL_TIMEOUT = env.int("TURN_TOTAL_TIMEOUT", default=600)
# Flowise: after the answer's tokens, this long with only heartbeats ends the wait and the
# answer is kept with a warning (aiclients/types.Timeouts.answer_tail); 0 = wait
# until the endpoint's total timeout.
UPSTREAM_ANSWER_TAIL_SECONDS = env.float("UPSTREAM_ANSWER_TAIL_SECONDS", default=90.0)
# The runner refreshes a turn's heartbeat this often; the reaper fails turns silent for longer
# than TURN_STALE_SECONDS (a killed worker).
TURN_HEARTBEAT_SECONDS = env.int("TURN_HEARTBEAT_SECONDS", default=5)
TURN_STALE_SECONDS = env.int("TURN_STALE_SECONDS", default=30)
# A pending turn no worker has claimed for this long is failed (queue lost or no worker).
TURN_PENDING_TIMEOUT = env.int("TURN_PENDING_TIMEOUT", default=600)
# The reaper sends run_turn again for turns still pending after this long (0 = never): a Redis
# restart without persistence loses queued tasks; a duplicate is harmless (the claim is atomic).
TURN_PENDING_REDISPATCH_SECONDS = env.int("TURN_PENDING_REDISPATCH_SECONDS", default=0)
TURN_REAPER_INTERVAL_SECONDS = env.int("TURN_REAPER_INTERVAL_SECONDS", default=60)
# Upstream retries happen only before the first token.
UPSTREAM_MAX_RETRIES = env.int("UPSTREAM_MAX_RETRIES", default=2)
# Threads each worker process uses for database writes from the streaming loop.
TURN_DB_THREADS = env.int("TURN_DB_THREADS", default=8)
# Threads of an ASGI process that run WebSocket consumers' database calls (in parallel).
WS_DB_THREADS = env.int("WS_DB_THREADS", default=10)

CELERY_BEAT_SCHEDULE = {
    "reap-stale-turns": {
        "task": "conversations.tasks.reap_stale_turns",
        "schedule": float(TURN_REAPER_INTERVAL_SECONDS),
    },
}
# The builtin answerer streams its passage at this pace (0 = as fast as possible).
BUILTIN_TOKENS_PER_SECOND = env.float("BUILTIN_TOKENS_PER_SECOND", default=40.0)
# Rate limits (Redis, shared by all processes). Per-bot override of the message limit: admin.
RATE_LIMITS_ENABLED = env.bool("RATE_LIMITS_ENABLED", default=True)
# Redis connections per process for the rate limiter (callers wait for a free one).
RATE_LIMIT_REDIS_CONNECTIONS = env.int("RATE_LIMIT_REDIS_CONNECTIONS", default=50)
MESSAGE_RATE_LIMIT_PER_MINUTE = env.int("MESSAGE_RATE_LIMIT_PER_MINUTE", default=60)
SESSION_CREATE_RATE_LIMIT = env.str("SESSION_CREATE_RATE_LIMIT", default="30/minute")
AUTH_TOKEN_RATE_LIMIT = env.str("AUTH_TOKEN_RATE_LIMIT", default="10/minute")
# Conversations with no message for this long are ended (0 = never).
SESSION_INACTIVITY_MINUTES = env.int("SESSION_INACTIVITY_MINUTES", default=24 * 60)
# POST /api/chat/message waits this long for the answer before returning the turn id.
CHAT_SYNC_TIMEOUT_SECONDS = env.float("CHAT_SYNC_TIMEOUT_SECONDS", default=30.0)
# A message on a resolved conversation reopens it (else 409 and the client starts a new one).
REOPEN_RESOLVED_ON_MESSAGE = env.bool("REOPEN_RESOLVED_ON_MESSAGE", default=True)
# Live inbox (docs/inbox.md): an agent counts as online this long after their inbox page's
# socket last said so (it refreshes every third of it); the wait shown when a bot has no rule.
INBOX_PRESENCE_SECONDS = env.int("INBOX_PRESENCE_SECONDS", default=60)
INBOX_USUAL_WAIT_MINUTES = env.int("INBOX_USUAL_WAIT_MINUTES", default=5)
# Whether AI clients honour HTTP(S)_PROXY / NO_PROXY from the environment.
UPSTREAM_TRUST_ENV = env.bool("UPSTREAM_TRUST_ENV", default=True)
# The AI clients' HTTP transport: "lean" (aiclients/transport.py) or "httpx"
# (httpcore's, sharded): kept selectable so the two are measured in the same run (#23 item 2).
UPSTREAM_TRANSPORT = env.str("UPSTREAM_TRANSPORT", default="lean")
if UPSTREAM_TRANSPORT not in ("lean", "httpx"):
    raise ValueError("UPSTREAM_TRANSPORT must be lean or httpx")
# URLs entered in the admin (AI endpoints, knowledge bases, order sources, helpdesks) may reach
# loopback, private, link-local (cloud metadata) or multicast addresses only when this is on:
# checked when they are saved (outbound/guard.py). ./run and
# ./run test turn it on: the fakes and the demo fake Flowise live on 127.0.0.1.
ALLOW_PRIVATE_NETWORK_URLS = env.bool("ALLOW_PRIVATE_NETWORK_URLS", default=False)

# --- Images: uploads, validation, description (images app; docs/images.md) -------------------
# Largest image accepted (bytes of the file; base64 in JSON is ~4/3 of this). Bigger → 413.
IMAGE_MAX_BYTES = env.int("IMAGE_MAX_BYTES", default=10 * 1024 * 1024)
# Largest width x height decoded (decompression bombs); also bounds the memory of one decode.
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=40_000_000)
# Longest animation accepted (GIF/WebP/APNG); only the first frame is kept.
IMAGE_MAX_FRAMES = env.int("IMAGE_MAX_FRAMES", default=100)
# Stored images are scaled down to this longest side (vision models scale to ~2048 anyway).
IMAGE_MAX_SIDE = env.int("IMAGE_MAX_SIDE", default=4096)
IMAGE_THUMBNAIL_SIZE = env.int("IMAGE_THUMBNAIL_SIZE", default=256)
IMAGE_MAX_PER_CONVERSATION = env.int("IMAGE_MAX_PER_CONVERSATION", default=20)
IMAGE_UPLOAD_RATE_LIMIT = env.str("IMAGE_UPLOAD_RATE_LIMIT", default="20/minute")  # per IP
# Our own retries of a failed description, on top of the client's retries before a first token.
IMAGE_DESCRIPTION_ATTEMPTS = env.int("IMAGE_DESCRIPTION_ATTEMPTS", default=2)
IMAGE_DESCRIPTION_BACKOFF_SECONDS = env.float("IMAGE_DESCRIPTION_BACKOFF_SECONDS", default=1.0)
# Delete images (files and rows) this many days after upload; 0 = keep as long as the conversation.
IMAGE_RETENTION_DAYS = env.int("IMAGE_RETENTION_DAYS", default=0)

# --- Analytics: turn analysis, metrics, conversation index (analytics app; docs/analytics.md) --
# Turn metrics (processing-metrics percentiles, dashboard timings) are kept this many days.
METRICS_RETENTION_DAYS = env.int("METRICS_RETENTION_DAYS", default=30)
# Analyses and context chunks are kept this many days (they also go with their conversation).
ANALYSIS_RETENTION_DAYS = env.int("ANALYSIS_RETENTION_DAYS", default=365)
# Indexed conversations idle this long leave the conversation index.
CONVERSATION_INDEX_RETENTION_DAYS = env.int("CONVERSATION_INDEX_RETENTION_DAYS", default=365)
# How often Celery beat syncs the conversation index (seconds).
CONVERSATION_INDEX_SYNC_SECONDS = env.int("CONVERSATION_INDEX_SYNC_SECONDS", default=300)
# AI calls merged per statement by a sync (bounds the memory of one aggregate).
CONVERSATION_INDEX_SYNC_BATCH = env.int("CONVERSATION_INDEX_SYNC_BATCH", default=250_000)
# Calls not yet committed when a sync passed them are picked up within this many seconds.
CONVERSATION_INDEX_GAP_HORIZON_SECONDS = env.int(
    "CONVERSATION_INDEX_GAP_HORIZON_SECONDS", default=600
)
# Messages of the conversation (up to the turn) sent to the analysis flow.
ANALYSIS_TRANSCRIPT_MESSAGES = env.int("ANALYSIS_TRANSCRIPT_MESSAGES", default=20)
# Longest an analysis-flow call may take before the builtin analyser is used instead.
ANALYSIS_TIMEOUT_SECONDS = env.int("ANALYSIS_TIMEOUT_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["conversation-index-sync"] = {
    "task": "analytics.tasks.sync_conversation_index",
    "schedule": float(CONVERSATION_INDEX_SYNC_SECONDS),
}

# --- Order tracking (orders app; docs/orders.md) -----------------------------------------------
# Connections each worker process keeps per order source, and seconds one request may take
# (a source's own timeout wins).
ORDERS_POOL_CONNECTIONS = env.int("ORDERS_POOL_CONNECTIONS", default=3)
ORDERS_TIMEOUT = env.float("ORDERS_TIMEOUT", default=15.0)
# Attempts per request (connection errors, timeouts, 429, 502/503/504), the first backoff step,
# the most a customer waits in total for retries (Retry-After, Shopify's cost bucket), and the
# deadline of one whole lookup.
ORDERS_MAX_ATTEMPTS = env.int("ORDERS_MAX_ATTEMPTS", default=3)
ORDERS_RETRY_BACKOFF = env.float("ORDERS_RETRY_BACKOFF", default=0.5)
ORDERS_MAX_RETRY_WAIT = env.float("ORDERS_MAX_RETRY_WAIT", default=10.0)
ORDERS_LOOKUP_DEADLINE = env.float("ORDERS_LOOKUP_DEADLINE", default=25.0)
# Every answered lookup (found, not found, wrong email) takes at least this long, so response
# time tells nothing about whether an order number exists.
ORDERS_LOOKUP_MIN_SECONDS = env.float("ORDERS_LOOKUP_MIN_SECONDS", default=0.3)
# Lookups that find nothing (or the wrong email) per conversation per hour before the bot stops.
ORDERS_MAX_FAILED_LOOKUPS = env.int("ORDERS_MAX_FAILED_LOOKUPS", default=5)
ORDERS_SHOPIFY_API_VERSION = env.str("ORDERS_SHOPIFY_API_VERSION", default="2025-10")

# --- Monitoring: health, pools, error log, maintenance, logs (monitoring app; docs/monitoring.md) --
from celery.schedules import crontab  # noqa: E402

# Log lines as JSON objects (`json`) or plain text (`plain`); both carry request/turn ids.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING["filters"]["request_context"] = {"()": "monitoring.logging.RequestContextFilter"}
LOGGING["formatters"]["json"] = {"()": "monitoring.logging.JsonFormatter"}
LOGGING["formatters"]["plain"] = {
    "()": "monitoring.logging.PlainFormatter",
    "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
}
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_FORMAT == "json" else "plain"
# The secrets filter stays in the chain (it runs after the context filter).
LOGGING["handlers"]["console"]["filters"] = [
    "request_context",
    *LOGGING["handlers"]["console"]["filters"],
]
MIDDLEWARE.insert(0, "monitoring.logging.RequestContextMiddleware")

# --- Behind a proxy (config/client_address.py; docs/deployment.md) -------------------------------
# Addresses/CIDRs of the reverse proxies in front of us ("unix" = a peer on a Unix socket). Only
# when the direct peer is one of them is TRUSTED_PROXY_HEADER read ("x-forwarded-for" or
# "forwarded", the one header your proxy sets): the client is its right-most untrusted address.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
TRUSTED_PROXY_HEADER = env.str("TRUSTED_PROXY_HEADER", default="x-forwarded-for").lower()
if TRUSTED_PROXY_HEADER not in ("x-forwarded-for", "forwarded"):
    raise ValueError("TRUSTED_PROXY_HEADER must be x-forwarded-for or forwarded")
for _proxy in TRUSTED_PROXIES:  # a typo fails at start-up, not on every request
    if _proxy.lower() != "unix":
        ipaddress.ip_network(_proxy, strict=False)
# First of all: every later middleware and view sees the client's address in REMOTE_ADDR.
MIDDLEWARE.insert(0, "config.client_address.TrustedProxyMiddleware")
# Request counts and latencies for /metrics, right inside the request context
# (monitoring/runtime_metrics.py).
MIDDLEWARE.insert(
    MIDDLEWARE.index("monitoring.logging.RequestContextMiddleware") + 1,
    "monitoring.runtime_metrics.RequestMetricsMiddleware",
)
# Optional error tracking (config/error_tracking.py): on when SENTRY_DSN is set.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    from config.error_tracking import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        release=SENTRY_RELEASE,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )

# --- Privacy (privacy app; docs/privacy.md) ----------------------------------------------------
# Each shop's retention periods (privacy.RetentionPolicy) are applied once a night in the shop's
# own time zone (accounts.Shop.timezone), after this local hour: the job runs hourly and takes
# the shops where that time has come and that were not done yet on that date.
RETENTION_LOCAL_HOUR = env.int("RETENTION_LOCAL_HOUR", default=3)
CELERY_BEAT_SCHEDULE["privacy-retention"] = {
    "task": "privacy.tasks.retention_enforce",
    "schedule": crontab(minute=15),
}
# Conversations idle past SESSION_INACTIVITY_MINUTES are ended by this sweep (issue #24).
CELERY_BEAT_SCHEDULE["sessions-expire-idle"] = {
    "task": "monitoring.tasks.sessions_expire_idle",
    "schedule": 15 * 60.0,
}
# --- Knowledge (knowledge/; docs/knowledge.md) ------------------------------------------------
# Retrieved passages given to an answer flow, in tokens (about 4 characters each).
KNOWLEDGE_CONTEXT_TOKENS = env.int("KNOWLEDGE_CONTEXT_TOKENS", default=1500)
# Per call to an embedding endpoint or Pinecone during a turn.
KNOWLEDGE_TIMEOUT_SECONDS = env.float("KNOWLEDGE_TIMEOUT_SECONDS", default=5.0)
# Uploads: the largest file, and the most chunks all of one shop's documents may make.
KNOWLEDGE_MAX_FILE_MB = env.int("KNOWLEDGE_MAX_FILE_MB", default=20)
KNOWLEDGE_MAX_CHUNKS_PER_SHOP = env.int("KNOWLEDGE_MAX_CHUNKS_PER_SHOP", default=50000)
# Vector search and hybrid ranking where pgvector is installed (false: full-text only); chunks
# sent to an embedding endpoint per request during ingestion.
KNOWLEDGE_VECTOR_SEARCH = env.bool("KNOWLEDGE_VECTOR_SEARCH", default=True)
KNOWLEDGE_EMBEDDING_BATCH = env.int("KNOWLEDGE_EMBEDDING_BATCH", default=64)
# Cosine similarity below which a chunk is not a vector match at all (unrelated text scores
# about 0.1-0.2 with OpenAI's text-embedding-3 models).
KNOWLEDGE_MIN_SIMILARITY = env.float("KNOWLEDGE_MIN_SIMILARITY", default=0.25)
# Full-text retrieval in bases of at least this many chunks ranks only by the question's words
# found in at most this share of the chunks (ranking every chunk a common word matches is slow).
KNOWLEDGE_PRUNE_FROM_CHUNKS = env.int("KNOWLEDGE_PRUNE_FROM_CHUNKS", default=2000)
KNOWLEDGE_COMMON_WORD_SHARE = env.float("KNOWLEDGE_COMMON_WORD_SHARE", default=0.05)
# …and, of those words, the rarest whose chunk counts add up to at most this many (the rarest
# one always): the chunks ranked per question, which is what full-text retrieval costs.
KNOWLEDGE_RANK_CANDIDATES = env.int("KNOWLEDGE_RANK_CANDIDATES", default=1000)
# Workers log through the same handler (ids, JSON, redaction) instead of Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Bearer token Prometheus sends to GET /metrics; empty = staff session only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Remote-control ping of the Celery workers: timeout (s) and how long a result is reused (s).
HEALTH_CELERY_TIMEOUT = env.float("HEALTH_CELERY_TIMEOUT", default=1.0)
HEALTH_CELERY_CACHE_SECONDS = env.float("HEALTH_CELERY_CACHE_SECONDS", default=5.0)
# Queues whose depth and oldest waiting task are reported; a task waiting longer than
# QUEUE_STUCK_SECONDS marks its queue stuck (and the monitoring health degraded).
MONITORED_QUEUES = env.list(
    "MONITORED_QUEUES", default=["turns", "analytics", "maintenance", "celery"]
)
QUEUE_STUCK_SECONDS = env.int("QUEUE_STUCK_SECONDS", default=120)
# Retention (days) of error log entries, job runs, and the event rows of finished turns.
ERROR_LOG_RETENTION_DAYS = env.int("ERROR_LOG_RETENTION_DAYS", default=30)
JOB_RUN_RETENTION_DAYS = env.int("JOB_RUN_RETENTION_DAYS", default=14)
STREAM_EVENTS_RETENTION_DAYS = env.int("STREAM_EVENTS_RETENTION_DAYS", default=30)
# Retention (days) of the shops' audit log (accounts.AuditEvent), pruned with the error log.
AUDIT_LOG_RETENTION_DAYS = env.int("AUDIT_LOG_RETENTION_DAYS", default=365)
# Rows one maintenance DELETE removes at a time (each batch is its own short transaction).
MAINTENANCE_BATCH_SIZE = env.int("MAINTENANCE_BATCH_SIZE", default=1000)
# Beat reads its schedules from the database (editable in the admin), seeded from the entries below.
CELERY_BEAT_SCHEDULER = "monitoring.beat:DatabaseScheduler"
# Task events for Flower (task list, timings), sent by the workers.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_TASK_EVENTS", default=True)
# The "sent" event is published by the process that enqueues, i.e. by the ASGI server inside
# every process-message request: measured 1.5 -> 0.8 ms of CPU and 2.3 -> 0.85 ms per publish
# without it (#23). Flower still lists every task from "received" on.
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SENT_EVENTS", default=False)
CELERY_BEAT_SCHEDULE["cache-cleanup"] = {
    "task": "monitoring.tasks.cache_cleanup",
    "schedule": 30 * 60.0,
}
CELERY_BEAT_SCHEDULE["turn-metrics-cleanup"] = {
    "task": "monitoring.tasks.turn_metrics_cleanup",
    "schedule": crontab(minute=0, hour=4),
}
CELERY_BEAT_SCHEDULE["stream-events-retention"] = {
    "task": "monitoring.tasks.stream_events_prune",
    "schedule": 60 * 60.0,
}
CELERY_BEAT_SCHEDULE["error-log-retention"] = {
    "task": "monitoring.tasks.error_logs_prune",
    "schedule": crontab(minute=30, hour=4),
}
# simplejwt's flushexpiredtokens: rows of expired refresh tokens (docs/access.md).
CELERY_BEAT_SCHEDULE["expired-tokens-flush"] = {
    "task": "monitoring.tasks.expired_tokens_flush",
    "schedule": crontab(minute=45, hour=4),
}

# --- Helpdesk handoff (helpdesk app; docs/helpdesk.md) -------------------------------------------
# Seconds one helpdesk request may take; attempts to create a ticket (429/5xx/timeouts retried,
# Retry-After honoured, else HELPDESK_RETRY_BACKOFF * 2^n seconds); handoff/contact requests one
# conversation may send per day; messages put into a ticket's transcript; days handoffs and
# ratings are kept.
HELPDESK_TIMEOUT = env.float("HELPDESK_TIMEOUT", default=15.0)
HELPDESK_TICKET_MAX_ATTEMPTS = env.int("HELPDESK_TICKET_MAX_ATTEMPTS", default=5)
HELPDESK_RETRY_BACKOFF = env.float("HELPDESK_RETRY_BACKOFF", default=10.0)
HELPDESK_MAX_REQUESTS_PER_CONVERSATION = env.int(
    "HELPDESK_MAX_REQUESTS_PER_CONVERSATION", default=5
)
HELPDESK_TRANSCRIPT_MESSAGES = env.int("HELPDESK_TRANSCRIPT_MESSAGES", default=200)
HELPDESK_RETENTION_DAYS = env.int("HELPDESK_RETENTION_DAYS", default=365)
CELERY_BEAT_SCHEDULE["helpdesk-retention"] = {
    "task": "helpdesk.tasks.retention",
    "schedule": 24 * 3600.0,
}
# Tickets that failed while the helpdesk was down, sent again (helpdesk.services.handoffs_resend).
CELERY_BEAT_SCHEDULE["helpdesk-resend"] = {
    "task": "helpdesk.tasks.resend_failed",
    "schedule": 300.0,
}
# Filtered conversation lists count matches exactly up to this many, then say "at least"
# (unfiltered and per-chatbot totals are always exact). Analytics app, docs/analytics.md.
CONVERSATION_INDEX_COUNT_LIMIT = env.int("CONVERSATION_INDEX_COUNT_LIMIT", default=1_000)
