"""Staff REST endpoints of the privacy app: a shop's retention periods, and the export and
erasure of one customer's data. Owners and admins of the shop (and operators) only."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import access
from accounts.models import Role, Shop
from accounts.permissions import STAFF_AUTHENTICATION, ShopMember
from config.errors import ApiError, ErrorCode
from config.schema import ERROR_RESPONSES
from privacy import services

ERRORS = {s: ERROR_RESPONSES[s] for s in (400, 401, 403, 404)}

CustomerBody = inline_serializer(
    name="PrivacyCustomer",
    fields={
        "user_id": serializers.CharField(required=False),
        "email": serializers.CharField(required=False),
    },
)
Retention = inline_serializer(
    name="RetentionPolicy",
    fields={
        **{
            name: serializers.IntegerField(allow_null=True, min_value=1, required=False)
            for name in services.RETENTION_FIELDS
        },
        services.REDACT_FIELD: serializers.BooleanField(required=False),
    },
)


def staff_api(methods: list[str]):
    def decorate(view):
        view = permission_classes([ShopMember])(view)
        view = authentication_classes(STAFF_AUTHENTICATION)(view)
        return api_view(methods)(view)

    return decorate


def shop_for(request: Request, slug: str) -> Shop:
    """The shop, if the user is its owner or admin (or an operator). Not a member: 404, as if
    it did not exist; a member with a lesser role: 403."""
    shop = Shop.objects.filter(slug=slug).first()
    if shop is None or not (access.is_operator(request.user) or access.role_in(request.user, shop)):
        raise ApiError(ErrorCode.NOT_FOUND, "No such shop.")
    if not access.is_operator(request.user) and access.role_in(request.user, shop) not in (
        Role.OWNER,
        Role.ADMIN,
    ):
        raise ApiError(
            ErrorCode.PERMISSION_DENIED, "Only the shop's owners and admins may do this."
        )
    return shop


def _body(request: Request) -> dict:
    if not isinstance(request.data, dict):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "Send a JSON object.")
    return request.data


def _retention(policy) -> dict:
    fields = (*services.RETENTION_FIELDS, services.REDACT_FIELD)
    return {name: getattr(policy, name) for name in fields}


@extend_schema(
    methods=["GET"],
    operation_id="shop_retention_get",
    summary="A shop's retention periods in days (null keeps the data).",
    responses={200: Retention, **ERRORS},
)
@extend_schema(
    methods=["PATCH"],
    operation_id="shop_retention_set",
    summary="Set some of a shop's retention periods (days, or null to keep).",
    request=Retention,
    responses={200: Retention, **ERRORS},
)
@staff_api(["GET", "PATCH"])
def retention(request: Request, slug: str) -> Response:
    shop = shop_for(request, slug)
    if request.method == "PATCH":
        policy = services.retention_policy_set(shop=shop, periods=_body(request))
    else:
        policy = services.retention_policy_of(shop=shop)
    return Response(_retention(policy))


@extend_schema(
    operation_id="customer_export",
    summary="Everything the shop holds about one customer (by widget user id or email), as JSON.",
    request=CustomerBody,
    responses={200: inline_serializer(name="CustomerExport", fields={}), **ERRORS},
)
@staff_api(["POST"])
def customer_export(request: Request, slug: str) -> Response:
    shop = shop_for(request, slug)
    body = _body(request)
    customer = services.Customer.of(user_id=body.get("user_id"), email=body.get("email"))
    data = services.customer_export(
        shop=shop, customer=customer, user=request.user, request=request
    )
    return Response(data, headers={"Cache-Control": "no-store"})


@extend_schema(
    operation_id="customer_erase",
    summary="Forget one customer of the shop: every row, Redis log and image file; the report.",
    request=CustomerBody,
    responses={200: inline_serializer(name="ErasureReport", fields={}), **ERRORS},
)
@staff_api(["POST"])
def customer_erase(request: Request, slug: str) -> Response:
    shop = shop_for(request, slug)
    body = _body(request)
    customer = services.Customer.of(user_id=body.get("user_id"), email=body.get("email"))
    report = services.customer_erase(
        shop=shop, customer=customer, user=request.user, request=request
    )
    return Response(report)
