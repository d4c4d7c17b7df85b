"""The admin side of the access rule: every admin class scopes its rows, choices and permissions
to the shops the signed-in user belongs to (accounts.access), and new objects land in the
user's current shop.

Mix `ShopScopedAdmin` into every ModelAdmin and `ShopScopedInline` into every inline, to the
left of the Django base class so its checks wrap theirs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q
from django.http import Http404, HttpRequest

from accounts import access
from accounts.models import AuditEvent, Shop
from accounts.services import audit_object

CURRENT_SHOP_SESSION_KEY = "accounts_current_shop"

# Which of a model's fields hold secrets (only those who may set secrets type them): the secret
# field type is chatbots' (chatbots.secrets), so chatbots registers its reader when it loads;
# accounts sits below chatbots and cannot import it. None registered: no field is a secret.
SecretFieldReader = Callable[[type[Model]], list[str]]
_secret_field_reader: list[SecretFieldReader] = []


def register_secret_field_reader(reader: SecretFieldReader) -> None:
    _secret_field_reader[:] = [reader]


def secret_field_names(model: type[Model]) -> list[str]:
    return _secret_field_reader[0](model) if _secret_field_reader else []


def current_shop_id(request: HttpRequest) -> int | None:
    """The shop new objects go to: the one chosen in the switcher, else the user's first."""
    user = request.user
    chosen = request.session.get(CURRENT_SHOP_SESSION_KEY) if hasattr(request, "session") else None
    ids = access.shop_ids_for(user)
    if ids is None:
        if chosen and Shop.objects.filter(pk=chosen).exists():
            return chosen
        return Shop.objects.order_by("name").values_list("pk", flat=True).first()
    if chosen in ids:
        return chosen
    return (
        Shop.objects.filter(pk__in=ids).order_by("name").values_list("pk", flat=True).first()
        if ids
        else None
    )


def _scoped_choices(queryset, request: HttpRequest, action: str = "view"):
    """FK/M2M choices: only rows of shops where the user may `action` rows of that model."""
    user = request.user
    if access.is_operator(user):
        return queryset
    if access.shop_path(queryset.model) is None:
        if queryset.model._meta.label_lower == "auth.user":
            return _visible_users(queryset, user)
        return queryset.none()
    return access.scope(queryset, user, actions=(action,))


def _visible_users(queryset, user):
    """Users a shop owner or admin may pick (e.g. as a chatbot's API users): members of their
    shops and API users already granted one of their shops' bots; never the whole user table."""
    ids = access.shop_ids_for(user, min_role="admin") or []
    return queryset.filter(
        Q(memberships__shop_id__in=ids) | Q(api_chatbots__shop_id__in=ids)
    ).distinct()


def _audit_change(request: HttpRequest, obj, action: str, entry) -> None:
    message = entry.get_change_message() if entry is not None else ""
    audit_object(action=action, obj=obj, request=request, detail={"change": message[:2000]})


def _destination_shop_id(instance, path: str, data: dict) -> int | None:
    """The shop a form's object will belong to once saved: the chosen shop, or the shop of the
    chosen chatbot (SHOP_PATHS), else the one it already has."""
    first, *rest = path.split("__")
    target = data.get(first) or getattr(instance, first, None)
    if target is None:
        return None
    if not rest:
        return target.pk
    for hop in rest[:-1]:
        target = getattr(target, hop, None)
        if target is None:
            return None
    return getattr(target, f"{rest[-1]}_id", None)


def _secrets_follow_shop(form_class, user, model):
    """A form whose typed (or removed) secrets are refused unless the user may set secrets in
    the shop the object lands in — not only in the shop the page was opened for (on an add
    form the shop, or the chatbot, is chosen on the form)."""
    secrets = [name for name in secret_field_names(model) if name in form_class.base_fields]
    path = access.shop_path(model)
    if not secrets or path is None or access.is_operator(user):
        return form_class

    def clean(self):
        data = super(form, self).clean()
        touched = [name for name in secrets if name in self.changed_data]
        if touched:
            shop_id = _destination_shop_id(self.instance, path, data or {})
            if shop_id is not None and not access.may_set_secrets(user, shop_id):
                for name in touched:
                    self.add_error(
                        name,
                        "Only the shop's owners set or remove keys; leave this empty, or ask "
                        "an owner of that shop.",
                    )
        return data

    form = type(form_class.__name__, (form_class,), {"clean": clean})
    return form


class _ScopedChoices:
    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related is Shop:
            # New objects go to a shop where the user may add them.
            ids = access.shop_ids_allowing(request.user, "add", model=self.model)
            shops = Shop.objects.all()
            kwargs["queryset"] = shops if ids is None else shops.filter(pk__in=ids)
        else:
            base = kwargs.get("queryset")
            if base is None:
                base = related._default_manager.all()
            kwargs["queryset"] = _scoped_choices(base, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        base = kwargs.get("queryset")
        if base is None:
            base = db_field.related_model._default_manager.all()
        kwargs["queryset"] = _scoped_choices(base, request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def _secret_fields(self) -> list[str]:
        return secret_field_names(self.model)


class ShopScopedAdmin(_ScopedChoices):
    """Rows, choices, permissions and new objects follow the user's shops and roles."""

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        user = request.user
        if access.is_operator(user):
            return queryset
        if access.shop_path(self.model) is None:
            return queryset.none()
        viewable = set(access.shop_ids_allowing(user, "view", model=self.model) or [])
        viewable |= set(access.shop_ids_allowing(user, "change", model=self.model) or [])
        path = access.shop_path(self.model)
        key = "pk__in" if path == "pk" else f"{path}__in"
        return queryset.filter(**{key: sorted(viewable)})

    # -- permissions: Django's check (roles are permissions, accounts.backends), then the role
    #    in the object's own shop.

    def _role_allows(self, request: HttpRequest, action: str, obj) -> bool:
        user = request.user
        if access.is_operator(user):
            return True
        if access.shop_path(self.model) is None:
            return False
        if obj is None:
            return access.may(user, action, self.model, None)
        return access.may(user, action, self.model, access.shop_id_of(obj))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) and (
            self._role_allows(request, "view", None) or self._role_allows(request, "change", None)
        )

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_view_permission(request, obj) and (
            self._role_allows(request, "view", obj) or self._role_allows(request, "change", obj)
        )

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        if not super().has_add_permission(request, *args):
            return False
        user = request.user
        if access.is_operator(user):
            return True
        return access.may(user, "add", self.model, current_shop_id(request))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._role_allows(
            request, "change", obj
        )

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._role_allows(
            request, "delete", obj
        )

    # -- actions: each selected row is acted on only where the user's role in *its* shop allows
    #    the action (Django checks an action's permissions once, without an object: a member
    #    who may change rows in one shop would otherwise act on every shop's rows they can see).

    def get_action(self, action):
        found = super().get_action(action)
        if found is None:
            return None
        func, name, description = found
        if getattr(func, "scoped_by_role", False):
            return found
        # "view", "add", "change", "delete" are roles' actions; a custom permission
        # ("reanalyse") writes something, so it needs "change". An action that declares none
        # (an export) needs "view".
        wanted = {
            p if p in access.ALL else "change" for p in getattr(func, "allowed_permissions", ())
        } or {"view"}

        @functools.wraps(func)
        def scoped(modeladmin, request: HttpRequest, queryset):
            allowed = modeladmin._rows_allowing(request, wanted, queryset)
            skipped = queryset.count() - allowed.count()
            if skipped:
                modeladmin.message_user(
                    request,
                    f"{skipped} selected row(s) left alone: your role in their shop does not "
                    "allow this action.",
                    messages.WARNING,
                )
            if not allowed.exists():
                return None
            return func(modeladmin, request, allowed)

        scoped.scoped_by_role = True
        return scoped, name, description

    def _rows_allowing(self, request: HttpRequest, actions: set[str], queryset):
        user = request.user
        if access.is_operator(user):
            return queryset
        return access.scope(queryset, user, actions=tuple(sorted(actions)))

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return _secrets_follow_shop(form, request.user, self.model)

    # -- the shop field: chosen on add (current shop first), fixed afterwards

    def _has_shop_field(self) -> bool:
        return any(f.name == "shop" for f in self.model._meta.get_fields())

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # An admin that writes its own get_fieldsets still shows the shop field first.
        own = cls.__dict__.get("get_fieldsets")
        if own is not None and not getattr(own, "adds_shop", False):

            def get_fieldsets(self, request, obj=None, _own=own):
                return self._with_shop(_own(self, request, obj))

            get_fieldsets.adds_shop = True
            cls.get_fieldsets = get_fieldsets

    def get_fieldsets(self, request: HttpRequest, obj=None):
        return self._with_shop(super().get_fieldsets(request, obj))

    def _with_shop(self, fieldsets):
        if not self._has_shop_field():
            return fieldsets
        names = set()
        for _, options in fieldsets:
            for field in options.get("fields", ()):
                names.update(field if isinstance(field, (list, tuple)) else [field])
        if "shop" in names:
            return fieldsets
        (title, options), *rest = fieldsets
        return [(title, {**options, "fields": ("shop", *options.get("fields", ()))}), *rest]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and self._has_shop_field() and "shop" not in readonly:
            # Moving a configured object to another shop would leave its parts behind.
            readonly.append("shop")
        shop_id = access.shop_id_of(obj) if obj is not None else current_shop_id(request)
        if not access.may_set_secrets(request.user, shop_id):
            readonly += [name for name in self._secret_fields() if name not in readonly]
        return readonly

    def get_changeform_initial_data(self, request: HttpRequest):
        initial = super().get_changeform_initial_data(request)
        if self._has_shop_field():
            initial.setdefault("shop", current_shop_id(request))
        return initial

    # -- the audit log: every save and delete made here, in the object's shop

    def log_addition(self, request: HttpRequest, obj, message):
        entry = super().log_addition(request, obj, message)
        _audit_change(request, obj, AuditEvent.Action.CREATE, entry)
        return entry

    def log_change(self, request: HttpRequest, obj, message):
        entry = super().log_change(request, obj, message)
        if message:  # a form saved untouched changed nothing, so there is nothing to audit
            _audit_change(request, obj, AuditEvent.Action.CHANGE, entry)
        return entry

    def log_deletions(self, request: HttpRequest, queryset):
        # Called before the rows go, so each still knows its shop.
        for obj in queryset:
            audit_object(action=AuditEvent.Action.DELETE, obj=obj, request=request)
        return super().log_deletions(request, queryset)

    # -- reversion's views that do not go through get_object

    def revision_view(self, request: HttpRequest, object_id, version_id, extra_context=None):
        if self.get_object(request, object_id) is None:
            raise Http404("No such object.")
        # reversion looks the version up by object id alone, not by model: another shop's
        # endpoint with the same pk would be shown, and reverted on save.
        from reversion.models import Version

        versions = Version.objects.get_for_object_reference(self.model, unquote(object_id))
        if not versions.filter(pk=version_id).exists():
            raise Http404("No such version of this object.")
        return super().revision_view(request, object_id, version_id, extra_context)

    def recoverlist_view(self, request: HttpRequest, extra_context=None):
        # Deleted objects have no shop left to scope by: recovering them is for operators.
        if not access.is_operator(request.user):
            raise PermissionDenied
        return super().recoverlist_view(request, extra_context)

    def recover_view(self, request: HttpRequest, version_id, extra_context=None):
        if not access.is_operator(request.user):
            raise PermissionDenied
        return super().recover_view(request, version_id, extra_context)


class ShopScopedInline(_ScopedChoices):
    """Inline rows and choices follow the parent's shop; secrets only for owners."""

    def get_queryset(self, request: HttpRequest):
        return access.scope(super().get_queryset(request), request.user)

    def _parent_allows(self, request: HttpRequest, action: str, obj) -> bool:
        user = request.user
        if access.is_operator(user):
            return True
        shop_id = access.shop_id_of(obj) if obj is not None else current_shop_id(request)
        return access.may(user, action, self.model, shop_id)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_view_permission(request, obj) and (
            self._parent_allows(request, "view", obj) or self._parent_allows(request, "change", obj)
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_add_permission(request, obj) and self._parent_allows(request, "add", obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._parent_allows(
            request, "change", obj
        )

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._parent_allows(
            request, "delete", obj
        )

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        shop_id = access.shop_id_of(obj) if obj is not None else current_shop_id(request)
        if not access.may_set_secrets(request.user, shop_id):
            readonly += [name for name in self._secret_fields() if name not in readonly]
        return readonly

    def get_formset(self, request: HttpRequest, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = _secrets_follow_shop(formset.form, request.user, self.model)
        return formset


class RecordAdmin:
    """Records the system or a customer wrote (audit events, customers' votes): staff read them,
    nobody adds, edits or deletes them in the admin. Put it before ShopScopedAdmin in the bases
    so its refusals win over the role checks."""

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
