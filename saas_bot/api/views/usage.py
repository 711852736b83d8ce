"""API v1 ``/usage`` (the period against the plan's limits, daily series, ledger events) and ``/subscription``."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.response import Response

from billing import selectors as usage_selectors
from billing.models import UsageEvent
from billing.services import subscription_get_live
from saas_bot.api import serializers as s
from saas_bot.api.filters import UsageEventFilter
from saas_bot.api.views.base import READ_ERRORS, CompanyViewSet, schema_error
from saas_bot.errors import ServiceError


@extend_schema_view(list=extend_schema(summary="Usage events of the ledger (paginated)", tags=["usage"],
                                      responses={200: s.UsageEventSerializer(many=True), **READ_ERRORS}))
class UsageEventViewSet(mixins.ListModelMixin, CompanyViewSet):
    """The ledger's billable events of the company, newest first."""

    serializer_class = s.UsageEventSerializer
    filterset_class = UsageEventFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return UsageEvent.objects.none()
        return UsageEvent.objects.for_company(self.company).order_by("-occurred_at", "-id")


class UsageViewSet(CompanyViewSet):
    """Usage of the current period against the plan's limits, and the daily series."""

    pagination_class = None
    filter_backends = []

    @extend_schema(summary="Current period against every limit", tags=["usage"],
                   responses={200: s.UsageCurrentSerializer, **READ_ERRORS, 402: schema_error("no_subscription.")})
    def current(self, request):
        return Response(s.UsageCurrentSerializer(usage_selectors.usage_current(company=self.company)).data)

    @extend_schema(summary="Messages, tokens and cost per UTC day", tags=["usage"],
                   parameters=[s.UsageDailyQuerySerializer], responses={200: s.UsageDaySerializer(many=True),
                                                                        **READ_ERRORS})
    def daily(self, request):
        query = s.UsageDailyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        today = timezone.now().date()
        end = query.validated_data.get("end") or today
        start = query.validated_data.get("start")
        if start is None:
            try:
                start = subscription_get_live(company=self.company).current_period_start.date()
            except ServiceError:
                start = end - dt.timedelta(days=29)
            start = min(start, end)
        if (end - start).days > 366:
            start = end - dt.timedelta(days=366)
        rows = usage_selectors.usage_daily(company=self.company, start=start, end=end,
                                           bot_id=query.validated_data.get("bot"))
        return Response(s.UsageDaySerializer(rows, many=True).data)


class SubscriptionViewSet(CompanyViewSet):
    """The company's live subscription: plan, limits, period."""

    @extend_schema(summary="Current plan, limits and period", tags=["subscription"],
                   responses={200: s.SubscriptionSerializer, **READ_ERRORS, 402: schema_error("no_subscription.")})
    def current(self, request):
        subscription = subscription_get_live(company=self.company)
        return Response(s.SubscriptionSerializer(subscription).data)
