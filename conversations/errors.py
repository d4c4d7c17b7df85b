"""The conversation services' refusals, named for what happened (config.errors.DomainError): a
service raises ConversationClosed, not an HTTP status; the code's status is the registry's."""

from __future__ import annotations

from config.errors import DomainError, ErrorCode


class ChatbotInactive(DomainError):
    """The conversation's chatbot was switched off in the admin."""

    error_code = ErrorCode.CHATBOT_INACTIVE


class ConversationClosed(DomainError):
    """The conversation has ended (or is resolved where that refuses the request)."""

    error_code = ErrorCode.CONVERSATION_CLOSED


class MessageRefused(DomainError):
    """A customer's message that cannot be sent: empty or longer than MESSAGE_MAX_CHARS."""

    error_code = ErrorCode.VALIDATION_ERROR


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key sent again with a different message; nothing is stored."""

    error_code = ErrorCode.IDEMPOTENCY_KEY_REUSED
