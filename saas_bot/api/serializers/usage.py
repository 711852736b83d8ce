"""Request and response shapes of ``/usage`` and ``/subscription``."""
from __future__ import annotations

import datetime as dt

from rest_framework import serializers

from billing.models import UsageEvent
from saas_bot.api.serializers.common import StrictTypes


class LimitUsageSerializer(serializers.Serializer):
    limit = serializers.CharField()
    used = serializers.IntegerField()
    maximum = serializers.IntegerField(allow_null=True, help_text="null = unlimited.")
    percent = serializers.FloatField(allow_null=True)


class UsageAlertSerializer(serializers.Serializer):
    limit = serializers.CharField()
    threshold = serializers.IntegerField()


class UsageCurrentSerializer(serializers.Serializer):
    plan = serializers.CharField()
    status = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    limits = LimitUsageSerializer(many=True)
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)
    credits = serializers.IntegerField()
    alerts = UsageAlertSerializer(many=True)


DAY_MIN, DAY_MAX = dt.date(2000, 1, 1), dt.date(2100, 12, 31)


class UsageDailyQuerySerializer(StrictTypes, serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First UTC day (default: the period's first day).")
    end = serializers.DateField(required=False, help_text="Last UTC day, inclusive (default: today).")
    bot = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def validate(self, attrs):
        for name in ("start", "end"):
            if name in attrs and not (DAY_MIN <= attrs[name] <= DAY_MAX):
                raise serializers.ValidationError({name: f"Between {DAY_MIN} and {DAY_MAX}."})
        if attrs.get("start") and attrs.get("end"):
            if attrs["start"] > attrs["end"]:
                raise serializers.ValidationError("start must not be after end.")
            if (attrs["end"] - attrs["start"]).days > 366:
                raise serializers.ValidationError("At most 367 days at once.")
        return attrs


class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    messages = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)


class UsageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageEvent
        fields = ("id", "kind", "quantity", "prompt_tokens", "completion_tokens", "model", "cost", "bot",
                  "end_user_id", "channel", "period_start", "occurred_at")
        read_only_fields = fields


class PlanSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()


class SubscriptionSerializer(serializers.Serializer):
    plan = PlanSerializer()
    status = serializers.CharField()
    limits = serializers.DictField(child=serializers.IntegerField(allow_null=True),
                                   help_text="Limit name -> maximum for the current period (null = unlimited).")
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    pending_plan = serializers.CharField(allow_null=True, source="pending_plan.code", default=None)
