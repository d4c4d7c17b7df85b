"""Moving chatbot configuration in and out of the database: the legacy `chatbot_settings` import,
the JSON export/import of whole configurations, and re-encrypting stored secrets.

One module per job, so each reads on its own: `legacy` with `legacy_read`, `legacy_checks` and `legacy_apply` (read →
validate → plan → apply),
`export` and `config_import` (the `chatbot-config` document), `secrets_rotation`, and `common`
(the error, the target shop, the helpers they share). Callers import from here.
"""

from chatbots.transfer.common import TransferError, transfer_shop
from chatbots.transfer.config_import import ConfigImportResult, chatbots_import
from chatbots.transfer.export import (
    CHATBOT_FIELDS,
    DOCUMENT_FORMAT,
    DOCUMENT_VERSION,
    ENDPOINT_FIELDS,
    ENTRY_FIELDS,
    FLOW_FIELDS,
    KNOWLEDGE_BASE_FIELDS,
    RULE_FIELDS,
    TEMPLATE_FIELDS,
    chatbots_export,
)
from chatbots.transfer.legacy import (
    LegacyImportResult,
    LegacyPlan,
    LegacyRowPlan,
    legacy_plan_build,
    legacy_settings_import,
)
from chatbots.transfer.legacy_apply import ChatbotChanges
from chatbots.transfer.legacy_checks import RejectedRow
from chatbots.transfer.legacy_read import (
    ANSWER_COLUMNS,
    BUILTIN_ENDPOINT_NAME,
    DEFAULT_INDEX_COLUMN,
    EXTRACTOR_COLUMNS,
    INDEX_COLUMNS,
    LEGACY_COLUMNS,
    LEGACY_ENDPOINT_NAME,
    LEGACY_ENDPOINT_URL,
    PINECONE_KEY_COLUMN,
    PLACEHOLDER_CHATFLOW_ID,
    LegacyFile,
    LegacyRow,
    legacy_settings_read,
)
from chatbots.transfer.secrets_rotation import (
    FieldRotation,
    RotationResult,
    UndecryptableSecret,
    encrypted_secret_fields,
    secrets_rotate,
)

__all__ = [
    "ANSWER_COLUMNS",
    "BUILTIN_ENDPOINT_NAME",
    "CHATBOT_FIELDS",
    "DEFAULT_INDEX_COLUMN",
    "DOCUMENT_FORMAT",
    "DOCUMENT_VERSION",
    "ENDPOINT_FIELDS",
    "ENTRY_FIELDS",
    "EXTRACTOR_COLUMNS",
    "FLOW_FIELDS",
    "INDEX_COLUMNS",
    "KNOWLEDGE_BASE_FIELDS",
    "LEGACY_COLUMNS",
    "LEGACY_ENDPOINT_NAME",
    "LEGACY_ENDPOINT_URL",
    "PINECONE_KEY_COLUMN",
    "PLACEHOLDER_CHATFLOW_ID",
    "RULE_FIELDS",
    "TEMPLATE_FIELDS",
    "ChatbotChanges",
    "ConfigImportResult",
    "FieldRotation",
    "LegacyFile",
    "LegacyImportResult",
    "LegacyPlan",
    "LegacyRow",
    "LegacyRowPlan",
    "RejectedRow",
    "RotationResult",
    "TransferError",
    "UndecryptableSecret",
    "chatbots_export",
    "chatbots_import",
    "encrypted_secret_fields",
    "legacy_plan_build",
    "legacy_settings_import",
    "legacy_settings_read",
    "secrets_rotate",
    "transfer_shop",
]
