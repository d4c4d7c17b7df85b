"""Admin: shops, their members and roles, the audit log, and the shop switcher in the header."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import access
from accounts.invitations import (
    InvitationUsed,
    InvitedAccountForm,
    invitation_accept,
    invitation_find,
    invitation_issue,
)
from accounts.models import AuditEvent, Invitation, Membership, Shop
from accounts.scoped_admin import (
    CURRENT_SHOP_SESSION_KEY,
    RecordAdmin,
    ShopScopedAdmin,
    current_shop_id,
)


class MembershipForm(forms.ModelForm):
    """Members are named by username: an owner never gets a list of every user on the server."""

    username = forms.CharField(
        max_length=150,
        help_text="The user's username (operators only; shop owners invite by email instead).",
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
    fields = ("name", "slug", "timezone", "created_at")
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

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        # Owners invite (InvitationAdmin): naming an existing username would tell them which
        # accounts exist and let them make anyone staff. Operators may still add by username.
        return access.is_operator(request.user) and super().has_add_permission(request, *args)

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


@admin.register(Invitation)
class InvitationAdmin(ShopScopedAdmin, admin.ModelAdmin):
    """Owners invite people to their shop by email; the page shows the link once, to send."""

    list_display = ("email", "shop", "role", "status", "invited_by", "created_at", "expires_at")
    list_filter = ("role", ("shop", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("shop", "invited_by")
    search_fields = ("email",)
    # A sent invitation, shown whole and read-only (the form and the read-only list in one).
    sent_fields = (
        "shop",
        "email",
        "role",
        "status",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_by",
        "accepted_at",
    )

    def get_fieldsets(self, request: HttpRequest, obj=None):
        if obj is None:
            return [(None, {"fields": ("shop", "email", "role")})]
        return [(None, {"fields": self.sent_fields})]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return []
        return list(self.sent_fields)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # an invitation is sent as it is; delete it to revoke the link

    @admin.display(description="status")
    def status(self, obj: Invitation) -> str:
        if obj.accepted_at:
            return "accepted"
        if obj.expires_at and obj.expires_at <= timezone.now():
            return "expired"
        return "pending"

    def save_model(self, request: HttpRequest, obj: Invitation, form, change: bool) -> None:
        if not change:
            request._invitation_token = invitation_issue(invitation=obj, invited_by=request.user)
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: Invitation, post_url_continue=None):
        token = getattr(request, "_invitation_token", None)
        if token:
            url = request.build_absolute_uri(
                reverse("admin:accounts_invitation_accept", args=[token])
            )
            messages.warning(
                request,
                format_html(
                    "Send this link to {} — it is shown only now, works once and expires on {}: "
                    "<input type='text' readonly size='90' value='{}' "
                    "onclick='this.select()' aria-label='Invitation link'>",
                    obj.email,
                    obj.expires_at.strftime("%Y-%m-%d"),
                    url,
                ),
            )
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self):
        return [
            # Not behind admin_view: the invited person may have no account yet.
            path("accept/<str:token>/", self.accept_view, name="accounts_invitation_accept"),
            *super().get_urls(),
        ]

    def accept_view(self, request: HttpRequest, token: str):
        invitation = invitation_find(token=token)
        context = {
            **self.admin_site.each_context(request),
            "title": "Join a shop",
            "is_nav_sidebar_enabled": False,  # nothing to navigate before joining
            "invitation": invitation,
            "login_url": f"{reverse('admin:login')}?next={request.path}",
        }
        if invitation is None:
            return TemplateResponse(
                request, "admin/accounts/invitation/invalid.html", context, status=404
            )
        user = request.user
        signed_in = user.is_authenticated and user.is_active
        form = None
        if request.method == "POST":
            if not signed_in:
                form = InvitedAccountForm(request.POST, email=invitation.email)
                if form.is_valid():
                    user = form.save()
                    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                    signed_in = True
            if signed_in:
                try:
                    membership = invitation_accept(
                        invitation=invitation, user=user, request=request
                    )
                except InvitationUsed:
                    return TemplateResponse(
                        request, "admin/accounts/invitation/invalid.html", context, status=404
                    )
                request.session[CURRENT_SHOP_SESSION_KEY] = membership.shop_id
                messages.success(
                    request, f"You are now a member of {membership.shop} ({membership.role})."
                )
                return HttpResponseRedirect(reverse("admin:index"))
        if not signed_in and form is None:
            form = InvitedAccountForm(email=invitation.email)
        context["form"] = form
        return TemplateResponse(request, "admin/accounts/invitation/accept.html", context)


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin, ShopScopedAdmin, admin.ModelAdmin):
    """Who did what: retention removes old events, nobody else."""

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
