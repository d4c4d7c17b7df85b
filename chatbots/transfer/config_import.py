"""The JSON import of whole chatbot configurations: rows created or updated by natural key,
every problem collected before the transaction is rolled back."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import ProtectedError

from accounts.models import Shop
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
from chatbots.secrets import SecretValue
from chatbots.transfer.common import TransferError, _error_lines, _save, _secret_differs, _short
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
)

# The package's one logger name, as before it became a package.
logger = logging.getLogger("chatbots.transfer")
_M = TypeVar("_M", bound=models.Model)


@dataclass
class ConfigImportResult:
    lines: list[str]
    notes: list[str]
    saved: bool

    @property
    def changed(self) -> bool:
        return bool(self.lines)


class _DocumentRows:
    """What every part of the import shares: the shop written into, the lines, notes and errors
    collected, the shape checks of the document's objects and lists, and the upsert by natural
    key. Every problem is collected before the import gives up."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.lines: list[str] = []
        self.notes: list[str] = []
        self.errors: list[str] = []

    def _object(self, item: Any, path: str, allowed: set[str], key: str) -> dict | None:
        if not isinstance(item, dict):
            self.errors.append(f"{path}: must be an object")
            return None
        unknown = sorted(set(item) - allowed)
        if unknown:
            self.errors.append(f"{path}: unknown field {', '.join(unknown)}")
            return None
        if not isinstance(item.get(key), str) or not item[key]:
            self.errors.append(f"{path}.{key}: required, a non-empty string")
            return None
        return item

    def _list(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            self.errors.append(f"{path}: must be a list")
            return []
        return value

    def _objects(self, items: Any, path: str, allowed: set[str], key: str) -> list[dict]:
        """The well-formed objects of the list at `path`; the others are reported."""
        wanted = []
        for number, item in enumerate(self._list(items, path)):
            item = self._object(item, f"{path}[{number}]", allowed, key)
            if item is not None:
                wanted.append(item)
        return wanted

    def _upsert(
        self,
        *,
        model: type[_M],
        lookup: dict[str, Any],
        values: dict[str, Any],
        secret_values: dict[str, Any],
        path: str,
        label: str,
    ) -> _M | None:
        """The row `lookup` names, created or with `values` and secrets written when they
        differ; None (and the problem recorded) when the values are invalid."""
        obj = model._default_manager.filter(**lookup).first()
        created = obj is None
        if obj is None:
            obj = model(**lookup)
        attnames = {
            name: cast(models.Field, model._meta.get_field(name)).attname for name in values
        }
        before = {name: getattr(obj, attnames[name]) for name in values}
        for name, value in values.items():
            setattr(obj, name, value)
        changed_secrets = self._secrets_set(obj, secret_values, path, label)
        if changed_secrets is None:
            return None
        try:
            obj.full_clean()
        except ValidationError as exc:
            self.errors.extend(_error_lines(path, exc))
            return None
        changed = [name for name in values if getattr(obj, attnames[name]) != before[name]]
        changed += changed_secrets
        if created:
            obj.save()
            self.lines.append(f"{label}: created")
        elif changed:
            _save(obj, changed, validated=True)
            self.lines.append(f"{label}: updated {', '.join(changed)}")
        return obj

    def _secrets_set(
        self, obj: models.Model, secret_values: dict[str, Any], path: str, label: str
    ) -> list[str] | None:
        """Write the document's secrets that differ into `obj` (unsaved); the names changed, or
        None when one is neither a secret nor a {"set": ...} marker."""
        changed = []
        for name, value in secret_values.items():
            current: SecretValue = getattr(obj, name)
            if isinstance(value, dict):
                # A marker says only whether the source had a value: it never clears ours.
                if set(value) != {"set"} or not isinstance(value["set"], bool):
                    self.errors.append(f'{path}.{name}: write the secret or {{"set": true}}')
                    return None
                if value["set"] and not current:
                    self.notes.append(
                        f"{label}: {name} was exported without --include-secrets; set it in "
                        "the admin"
                    )
            elif isinstance(value, str):
                if _secret_differs(current, value):
                    setattr(
                        obj, name, SecretValue.from_plaintext(value) if value else SecretValue()
                    )
                    changed.append(name)
            else:
                self.errors.append(f'{path}.{name}: write the secret or {{"set": true}}')
                return None
        return changed


class _KnowledgeRows(_DocumentRows):
    """A chatbot's knowledge bases and their entries."""

    def _knowledge_bases(self, chatbot: Chatbot, items: Any, path: str) -> None:
        label = f"chatbot {chatbot.public_id}"
        allowed = {*KNOWLEDGE_BASE_FIELDS, "api_key", "entries", "embedding_endpoint"}
        wanted = self._objects(items, f"{path}.knowledge_bases", allowed, "name")
        names = [item["name"] for item in wanted]
        for kb in chatbot.knowledge_bases.exclude(name__in=names):
            kb.delete()
            self.lines.append(f"{label}: knowledge base {kb.name} removed")
        for item in wanted:
            self._knowledge_base(chatbot, item, path, label)

    def _knowledge_base(self, chatbot: Chatbot, item: dict, path: str, label: str) -> None:
        kb_path = f"{path}.knowledge_bases[{item['name']}]"
        values = {k: v for k, v in item.items() if k in KNOWLEDGE_BASE_FIELDS and k != "name"}
        if "embedding_endpoint" in item:
            endpoint = None
            if item["embedding_endpoint"] is not None:
                endpoint = AIEndpoint.objects.filter(
                    shop=self.shop, name=item["embedding_endpoint"]
                ).first()
                if endpoint is None:
                    self.errors.append(
                        f"{kb_path}.embedding_endpoint: no endpoint named "
                        f"“{_short(item['embedding_endpoint'])}” in the document or the "
                        "database"
                    )
                    return
            values["embedding_endpoint"] = endpoint
        kb = self._upsert(
            model=KnowledgeBase,
            lookup={"chatbot": chatbot, "name": item["name"]},
            values=values,
            secret_values={k: v for k, v in item.items() if k == "api_key"},
            path=kb_path,
            label=f"{label}: knowledge base {item['name']}",
        )
        if kb is not None and "entries" in item:
            self._entries(kb, item["entries"], kb_path, f"{label}: knowledge base {kb.name}")

    def _entries(self, kb: KnowledgeBase, items: Any, path: str, label: str) -> None:
        # Entries have no natural key: match identical ones, add the new, remove the rest.
        wanted = []
        for number, item in enumerate(self._list(items, f"{path}.entries")):
            item = self._object(item, f"{path}.entries[{number}]", set(ENTRY_FIELDS), "title")
            if item is None:
                continue
            entry = KnowledgeEntry(
                knowledge_base=kb,
                title=item["title"],
                text=item.get("text", ""),
                tags=item.get("tags", []),
            )
            try:
                entry.full_clean()
            except ValidationError as exc:
                self.errors.extend(_error_lines(f"{path}.entries[{number}]", exc))
                continue
            wanted.append(entry)
        existing: dict[tuple, list[KnowledgeEntry]] = defaultdict(list)
        for entry in kb.entries.all():
            existing[(entry.title, entry.text, tuple(entry.tags))].append(entry)
        added = 0
        for entry in wanted:
            matches = existing.get((entry.title, entry.text, tuple(entry.tags)))
            if matches:
                matches.pop()
            else:
                entry.save()
                added += 1
        removed = [entry.pk for entries in existing.values() for entry in entries]
        KnowledgeEntry.objects.filter(pk__in=removed).delete()
        if added or removed:
            self.lines.append(f"{label}: entries {added} added, {len(removed)} removed")


class _FlowRows(_DocumentRows):
    """A chatbot's flows and the prompt template each uses."""

    def _flows(self, chatbot: Chatbot, items: Any, path: str) -> None:
        allowed = {*FLOW_FIELDS, "endpoint", "knowledge_base", "template"}
        wanted = self._objects(items, f"{path}.flows", allowed, "name")
        existing = {flow.name: flow for flow in chatbot.flows.all()}
        self._flows_remove(chatbot, existing, {item["name"] for item in wanted}, path)
        self._flows_free_unique(existing, wanted)
        for item in wanted:
            self._flow(chatbot, item, path)

    def _flows_remove(
        self, chatbot: Chatbot, existing: dict[str, Flow], wanted: set[str], path: str
    ) -> None:
        """Remove the flows the document no longer has, unless something still uses them."""
        for name, flow in existing.items():
            if name in wanted:
                continue
            try:
                flow.delete()
            except ProtectedError:
                self.errors.append(f"{path}.flows[{name}]: still in use; cannot remove it")
                continue
            self.lines.append(f"chatbot {chatbot.public_id}: flow {name} removed")

    def _flows_free_unique(self, existing: dict[str, Flow], wanted: list[dict]) -> None:
        """Free the main mark and routing keys that move to another flow first, so swapping
        them between flows does not trip the uniqueness constraints half-way."""
        losing_main, losing_key = [], []
        for item in wanted:
            current = existing.get(item["name"])
            if current is None:
                continue
            if current.is_main and "is_main" in item and item["is_main"] is not True:
                losing_main.append(current.pk)
            if (
                current.routing_key
                and "routing_key" in item
                and item["routing_key"] != current.routing_key
            ):
                losing_key.append(current.pk)
        Flow.objects.filter(pk__in=losing_main).update(is_main=False)
        Flow.objects.filter(pk__in=losing_key).update(routing_key="")

    def _flow(self, chatbot: Chatbot, item: dict, path: str) -> None:
        name = item["name"]
        flow_path = f"{path}.flows[{name}]"
        label = f"chatbot {chatbot.public_id}: flow {name}"
        values = self._flow_values(chatbot, item, flow_path)
        if values is None:
            return
        flow = self._upsert(
            model=Flow,
            lookup={"chatbot": chatbot, "name": name},
            values=values,
            secret_values={},
            path=flow_path,
            label=label,
        )
        if flow is not None and "template" in item:
            self._assignment(chatbot, flow, item["template"], flow_path, label)

    def _flow_values(self, chatbot: Chatbot, item: dict, flow_path: str) -> dict | None:
        """The flow's columns, its endpoint and knowledge base found by name; None (and the
        problem recorded) when either does not exist."""
        values = {k: v for k, v in item.items() if k in FLOW_FIELDS and k != "name"}
        if "endpoint" in item:
            endpoint = AIEndpoint.objects.filter(shop=self.shop, name=item["endpoint"]).first()
            if endpoint is None:
                self.errors.append(
                    f"{flow_path}.endpoint: no endpoint named “{_short(item['endpoint'])}” in "
                    "the document or the database"
                )
                return None
            values["endpoint"] = endpoint
        if "knowledge_base" in item:
            kb = None
            if item["knowledge_base"] is not None:
                kb = chatbot.knowledge_bases.filter(name=item["knowledge_base"]).first()
                if kb is None:
                    self.errors.append(
                        f"{flow_path}.knowledge_base: this chatbot has no knowledge base "
                        f"named “{_short(item['knowledge_base'])}”"
                    )
                    return None
            values["knowledge_base"] = kb
        return values

    def _assignment(self, chatbot: Chatbot, flow: Flow, item: Any, path: str, label: str) -> None:
        current = TemplateAssignment.objects.filter(flow=flow).first()
        if item is None:
            if current is not None:
                current.delete()
                self.lines.append(f"{label}: template removed")
            return
        item = self._object(item, f"{path}.template", {"name", "overrides"}, "name")
        if item is None:
            return
        template = PromptTemplate.objects.filter(shop=self.shop, name=item["name"]).first()
        if template is None:
            self.errors.append(
                f"{path}.template: no prompt template named “{_short(item['name'])}” in the "
                "document or the database"
            )
            return
        values: dict[str, Any] = {"chatbot": chatbot, "template": template}
        if "overrides" in item:
            values["overrides"] = item["overrides"]
        self._upsert(
            model=TemplateAssignment,
            lookup={"flow": flow},
            values=values,
            secret_values={},
            path=f"{path}.template",
            label=f"{label}: template {template.name}",
        )


class _ConfigImporter(_KnowledgeRows, _FlowRows):
    """Creates or updates rows by natural key: the shop's endpoints and prompt templates first,
    then each chatbot with its knowledge bases, flows and text rules."""

    def run(self, document: Any) -> None:
        if not isinstance(document, dict) or document.get("format") != DOCUMENT_FORMAT:
            raise TransferError(f"Not a {DOCUMENT_FORMAT} document (its “format” must say so).")
        if document.get("version") != DOCUMENT_VERSION:
            raise TransferError(
                f"Version {document.get('version')!r} is not supported; this program reads "
                f"version {DOCUMENT_VERSION}."
            )
        allowed = {"format", "version", "exported_at", "chatbots", "endpoints", "prompt_templates"}
        unknown = sorted(set(document) - allowed)
        if unknown:
            raise TransferError(f"Unknown top-level field {', '.join(unknown)}.")
        for number, item in enumerate(self._list(document.get("endpoints", []), "endpoints")):
            self._endpoint(item, f"endpoints[{number}]")
        templates = self._list(document.get("prompt_templates", []), "prompt_templates")
        for number, item in enumerate(templates):
            self._template(item, f"prompt_templates[{number}]")
        for number, item in enumerate(self._list(document.get("chatbots", []), "chatbots")):
            self._chatbot(item, f"chatbots[{number}]")

    def _endpoint(self, item: Any, path: str) -> None:
        item = self._object(item, path, {*ENDPOINT_FIELDS, "api_key"}, "name")
        if item is None:
            return
        path = f"endpoints[{item['name']}]"
        self._upsert(
            model=AIEndpoint,
            lookup={"shop": self.shop, "name": item["name"]},
            values={k: v for k, v in item.items() if k in ENDPOINT_FIELDS and k != "name"},
            secret_values={k: v for k, v in item.items() if k == "api_key"},
            path=path,
            label=f"endpoint {item['name']}",
        )

    def _template(self, item: Any, path: str) -> None:
        item = self._object(item, path, set(TEMPLATE_FIELDS), "name")
        if item is None:
            return
        self._upsert(
            model=PromptTemplate,
            lookup={"shop": self.shop, "name": item["name"]},
            values={k: v for k, v in item.items() if k != "name"},
            secret_values={},
            path=f"prompt_templates[{item['name']}]",
            label=f"prompt template {item['name']}",
        )

    def _chatbot(self, item: Any, path: str) -> None:
        children = {"knowledge_bases", "flows", "text_rules"}
        item = self._object(item, path, {*CHATBOT_FIELDS, *children}, "public_id")
        if item is None:
            return
        public_id = item["public_id"]
        path = f"chatbots[{public_id}]"
        if Chatbot.objects.filter(public_id=public_id).exclude(shop=self.shop).exists():
            # Chatbot ids are global (they are in the widget's URLs): another shop's id is taken.
            self.errors.append(f"{path}.public_id: the chatbot id is taken; choose another")
            return
        chatbot = self._upsert(
            model=Chatbot,
            lookup={"shop": self.shop, "public_id": public_id},
            values={k: v for k, v in item.items() if k in CHATBOT_FIELDS and k != "public_id"},
            secret_values={},
            path=path,
            label=f"chatbot {public_id}",
        )
        if chatbot is None:
            return
        if "knowledge_bases" in item:
            self._knowledge_bases(chatbot, item["knowledge_bases"], path)
        if "flows" in item:
            self._flows(chatbot, item["flows"], path)
        if "text_rules" in item:
            self._text_rules(chatbot, item["text_rules"], path)

    def _text_rules(self, chatbot: Chatbot, items: Any, path: str) -> None:
        # Rules have no natural key and apply in order: the list is replaced when it differs.
        wanted = []
        for number, item in enumerate(self._list(items, f"{path}.text_rules")):
            rule_path = f"{path}.text_rules[{number}]"
            if not isinstance(item, dict) or set(item) - set(RULE_FIELDS):
                self.errors.append(f"{rule_path}: must be an object with {', '.join(RULE_FIELDS)}")
                continue
            rule = TextRule(chatbot=chatbot, **item)
            try:
                rule.full_clean()
            except ValidationError as exc:
                self.errors.extend(_error_lines(rule_path, exc))
                continue
            wanted.append(rule)
        current = list(chatbot.text_rules.order_by("position", "pk"))

        def shape(rules: list[TextRule]) -> list[tuple]:
            return [tuple(getattr(rule, name) for name in RULE_FIELDS) for rule in rules]

        if shape(current) != shape(wanted):
            chatbot.text_rules.all().delete()
            for rule in wanted:
                rule.save()
            self.lines.append(
                f"chatbot {chatbot.public_id}: text rules replaced ({len(current)} → {len(wanted)})"
            )


def chatbots_import(*, document: Any, shop: Shop, dry_run: bool = False) -> ConfigImportResult:
    """Create or update everything in a chatbot-config document in `shop`, atomically and
    idempotently."""
    importer = _ConfigImporter(shop)
    with transaction.atomic():
        importer.run(document)
        if importer.errors:
            transaction.set_rollback(True)
            raise TransferError("\n".join(importer.errors))
        if dry_run:
            transaction.set_rollback(True)
    if not dry_run and importer.lines:
        logger.info("configuration import: %d changes", len(importer.lines))
    return ConfigImportResult(lines=importer.lines, notes=importer.notes, saved=not dry_run)
