"""Admin: shops, their members and roles, the audit log, and the shop switcher in the header."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import access
from accounts.models import AuditEvent, Membership, Shop
from accounts.scoped_admin import CURRENT_SHOP_SESSION_KEY, ShopScopedAdmin, current_shop_id


class MembershipForm(forms.ModelForm):
    """Members are named by username: an owner never gets a list of every user on the server."""

    username = forms.CharField(
        max_length=150,
        help_text="The staff user's username. An operator creates the account first.",
    )

    class Meta:
        model = Membership
        fields = ("shop", "username", "role")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            self.fields["username"].disabled = True

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if self.instance.pk:
            return self.instance.user.get_username()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(
                "No active user with this username; ask a platform operator to create it."
            )
        self.instance.user = user
        return username

    def validate_unique(self) -> None:
        # The user is set in clean_username, after Django picked the fields it checks.
        super().validate_unique()
        if (
            not self.instance.pk
            and self.instance.user_id
            and self.cleaned_data.get("shop")
            and Membership.objects.filter(
                user_id=self.instance.user_id, shop=self.cleaned_data["shop"]
            ).exists()
        ):
            self.add_error("username", "This user is already a member of this shop.")


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ("user_name", "role", "created_at")
    readonly_fields = ("user_name", "created_at")
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # added on the membership page, by username

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return obj is not None and access.may(request.user, "view", Membership, obj.pk)

    @admin.display(description="user")
    def user_name(self, obj: Membership) -> str:
        return obj.user.get_username()


@admin.register(Shop)
class ShopAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    fields = ("name", "slug", "created_at")
    readonly_fields = ("created_at",)
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        # A new tenant is the platform's decision.
        return access.is_operator(request.user)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return access.is_operator(request.user)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not access.is_operator(request.user):
            readonly.append("slug")  # --shop on the command line; operators rename it
        return readonly

    def get_urls(self):
        return [
            path(
                "switch/",
                self.admin_site.admin_view(self.switch_view),
                name="accounts_shop_switch",
            ),
            *super().get_urls(),
        ]

    def switch_view(self, request: HttpRequest) -> HttpResponseRedirect:
        """The header's shop switcher: remember which shop new objects go to."""
        target = request.POST.get("next") or reverse("admin:index")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            target = reverse("admin:index")
        if request.method != "POST":
            return HttpResponseRedirect(target)
        try:
            shop_id = int(request.POST.get("shop", ""))
        except ValueError:
            shop_id = None
        # A shop the user is not a member of is refused like one that does not exist.
        if shop_id is None or not access.shops_for(request.user).filter(pk=shop_id).exists():
            messages.error(request, "No such shop.")
        else:
            request.session[CURRENT_SHOP_SESSION_KEY] = shop_id
        return HttpResponseRedirect(target)


@admin.register(Membership)
class MembershipAdmin(ShopScopedAdmin, admin.ModelAdmin):
    form = MembershipForm
    list_display = ("user_name", "shop", "role", "created_at")
    list_filter = ("role", ("shop", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "shop")
    search_fields = ("user__username", "shop__name")

    def get_fieldsets(self, request: HttpRequest, obj=None):
        return [(None, {"fields": ("shop", "username", "role")})]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["shop"] if obj is not None else []

    @admin.display(description="user", ordering="user__username")
    def user_name(self, obj: Membership) -> str:
        return obj.user.get_username()

    def save_model(self, request: HttpRequest, obj: Membership, form, change: bool) -> None:
        # Only the shop's owners (and operators) reach this page; an owner may make another.
        super().save_model(request, obj, form, change)
        # Shop members work in the admin: it admits staff users only (a new member becomes
        # staff; an existing membership saved again changes nothing).
        if not change and not obj.user.is_staff:
            obj.user.is_staff = True
            obj.user.save(update_fields=["is_staff"])


@admin.register(AuditEvent)
class AuditEventAdmin(ShopScopedAdmin, admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "action", "object_type", "object_label", "ip")
    list_filter = ("action", ("shop", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("actor_label", "object_label", "object_id")
    date_hierarchy = "created_at"
    list_per_page = 50
    fields = (
        "created_at",
        "shop",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_label",
        "detail",
        "ip",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # retention removes old events, nobody else


# --- the shop switcher in every admin page's header --------------------------------------------

_site_each_context = admin.site.each_context


def _each_context(request: HttpRequest) -> dict:
    context = _site_each_context(request)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        shops = list(access.shops_for(user).order_by("name"))
        if shops:
            context["shop_switcher"] = {"shops": shops, "current": current_shop_id(request)}
    return context


admin.site.each_context = _each_context
