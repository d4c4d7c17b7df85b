"""Invalidate cached configuration the moment staff save anything a chatbot depends on."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from chatbots import selectors
from chatbots.models import (
    AIEndpoint,
    Chatbot,
    Flow,
    KnowledgeBase,
    KnowledgeEntry,
    PromptTemplate,
    TemplateAssignment,
    TextRule,
)
from chatbots.secrets import secret_field_names
from chatbots.services import knowledge_entries_reindex
from config.redis import get_redis


def _drop(public_ids: list[str]) -> None:
    selectors.chatbot_config_invalidate(*public_ids)
    # Again after commit: a reader between our write and the commit may have re-cached old rows.
    transaction.on_commit(lambda: selectors.chatbot_config_invalidate(*public_ids))


@receiver([post_save, post_delete], sender=Chatbot)
def chatbot_changed(sender, instance: Chatbot, **kwargs) -> None:
    _drop([instance.public_id])
    pk = instance.pk
    selectors.chatbot_access_invalidate(pk)
    transaction.on_commit(lambda: selectors.chatbot_access_invalidate(pk))
    get_redis().delete(selectors.ORIGINS_KEY)
    transaction.on_commit(lambda: get_redis().delete(selectors.ORIGINS_KEY))


@receiver([post_save, post_delete], sender=Flow)
@receiver([post_save, post_delete], sender=KnowledgeBase)
@receiver([post_save, post_delete], sender=TemplateAssignment)
@receiver([post_save, post_delete], sender=TextRule)
def chatbot_part_changed(sender, instance, **kwargs) -> None:
    public_id = Chatbot.objects.filter(pk=instance.chatbot_id).values_list("public_id", flat=True)
    _drop(list(public_id))


@receiver([post_save, post_delete], sender=AIEndpoint)
def endpoint_changed(sender, instance: AIEndpoint, **kwargs) -> None:
    # Flows call it; knowledge bases embed with it (its URL and key are in the cached config).
    ids = Chatbot.objects.filter(
        Q(flows__endpoint_id=instance.pk) | Q(knowledge_bases__embedding_endpoint_id=instance.pk)
    ).values_list("public_id", flat=True)
    _drop(list(set(ids)))


@receiver([post_save, post_delete], sender=PromptTemplate)
def template_changed(sender, instance: PromptTemplate, **kwargs) -> None:
    shop_id = instance.shop_id
    selectors.prompt_template_invalidate(instance.name, shop_id=shop_id)
    transaction.on_commit(
        lambda: selectors.prompt_template_invalidate(instance.name, shop_id=shop_id)
    )
    # A renamed template changes the name cached inside the configs that use it.
    ids = Chatbot.objects.filter(template_assignments__template_id=instance.pk).values_list(
        "public_id", flat=True
    )
    _drop(list(set(ids)))


@receiver(post_save, sender=KnowledgeEntry)
def knowledge_entry_saved(sender, instance: KnowledgeEntry, **kwargs) -> None:
    knowledge_entries_reindex(entry_ids=[instance.pk])


@receiver(pre_save, sender=Chatbot)
def chatbot_remember_language(sender, instance: Chatbot, **kwargs) -> None:
    # A mark for this save's post_save handlers (they read it with getattr).
    instance._previous_language = (  # type: ignore[attr-defined]
        Chatbot.objects.filter(pk=instance.pk).values_list("language", flat=True).first()
        if instance.pk
        else None
    )


@receiver(post_save, sender=Chatbot)
def chatbot_language_changed(sender, instance: Chatbot, created: bool, **kwargs) -> None:
    previous = getattr(instance, "_previous_language", None)
    if not created and previous is not None and previous != instance.language:
        knowledge_entries_reindex(chatbot=instance)


def cors_origin_allowed(sender, request, **kwargs) -> bool:
    """CORS for any active chatbot's allowed origin; each view then checks the bot's own list."""
    import redis

    from chatbots.selectors import all_allowed_origins

    origin = request.headers.get("Origin", "")
    if not origin:
        return False
    try:
        allowed = all_allowed_origins()
    except redis.RedisError:
        # Redis down: no CORS answers (fail closed), but the request itself is still served.
        return False
    return "*" in allowed or origin in allowed


def _connect_cors() -> None:
    from corsheaders.signals import check_request_enabled

    check_request_enabled.connect(cors_origin_allowed, dispatch_uid="chatbot-origins")


_connect_cors()


@receiver(pre_save, dispatch_uid="raw-save-keeps-stored-secrets")
def raw_save_keeps_stored_secrets(sender, instance, raw: bool = False, **kwargs) -> None:
    """A revert from the configuration history saves the stored version raw, and versions hold no
    secrets (chatbots/admin.py): keep the key stored now instead of blanking it. Also covers any
    other raw load that leaves a secret out."""
    if not raw or instance.pk is None:
        return
    missing = [name for name in secret_field_names(sender) if not getattr(instance, name)]
    if not missing:
        return
    stored = sender._default_manager.filter(pk=instance.pk).values(*missing).first()
    for name, value in (stored or {}).items():
        setattr(instance, name, value)


@receiver(pre_save, sender=Chatbot, dispatch_uid="raw-save-keeps-publishing")
def raw_save_keeps_publishing(sender, instance: Chatbot, raw: bool = False, **kwargs) -> None:
    """A history revert restores a draft, not what is live: the publishing mode and the live
    version stay as they are now (only publishing and rollback move them, chatbots.versions)."""
    if not raw or instance.pk is None:
        return
    stored = Chatbot.objects.filter(pk=instance.pk).values("publishing", "live_version_id").first()
    if stored:
        instance.publishing = stored["publishing"]
        instance.live_version_id = stored["live_version_id"]
