"""Shapes every API v1 resource shares: the error body, strict request types, a collection id field."""
from __future__ import annotations

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rag.models import Collection


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable (docs/api.md lists them).")
    message = serializers.CharField(help_text="For people; may change.")
    detail = serializers.JSONField(allow_null=True, help_text="Field errors, per-file outcomes, or null.")


class ErrorSerializer(serializers.Serializer):
    """Every error: ``{"error": {"code", "message", "detail"}}``."""

    error = ErrorDetailSerializer()


class StrictTypes:
    """Request serializers: a JSON value of the wrong type is a 400 naming the field, not coerced.

    DRF turns ``{"question": 42}`` into "42" and ``{"conversation_id": true}`` into 1; a client that sends
    a number for a text field has a bug it should hear about. Text fields take strings; integer and id
    fields take integers: in a JSON body only JSON numbers (``"24"`` is text, refused), in a form or
    multipart body (a QueryDict, which only carries strings, or data built from one: context
    ``form_encoded=True``) strings of digits; booleans are never numbers. ``null`` stays with the field's own
    ``allow_null``.
    """

    def to_internal_value(self, data):
        from collections.abc import Mapping

        from django.http import QueryDict

        errors = {}
        if isinstance(data, Mapping):
            digits_allowed = isinstance(data, QueryDict) or bool(self.context.get("form_encoded"))
            for name, field in self.fields.items():
                if field.read_only or name not in data:
                    continue
                value = data[name]
                problem = _type_problem(field, value, digits_allowed=digits_allowed)
                if problem:
                    errors[name] = [problem]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _is_integer_like(value, *, digits_allowed: bool) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        digits_allowed and isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value) is not None)


def _type_problem(field, value, *, digits_allowed: bool) -> str | None:
    if value is None:
        return None
    if isinstance(field, serializers.CharField) and not isinstance(value, str):
        return "Must be a string."
    if isinstance(field, (serializers.IntegerField, serializers.PrimaryKeyRelatedField)) \
            and not _is_integer_like(value, digits_allowed=digits_allowed):
        return "Must be an integer."
    if isinstance(field, serializers.ManyRelatedField):
        if not isinstance(value, list) or not all(_is_integer_like(item, digits_allowed=digits_allowed)
                                                  for item in value):
            return "Must be a list of integer ids."
    if isinstance(field, serializers.ChoiceField) and not isinstance(value, str):
        return "Must be a string."
    if isinstance(field, serializers.BooleanField) and not isinstance(value, bool) and not digits_allowed:
        return "Must be true or false."
    if isinstance(field, serializers.ListField) and isinstance(field.child, serializers.CharField) \
            and not digits_allowed and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return "Must be a list of strings."
    if isinstance(field, serializers.FloatField) and not (
            (isinstance(value, (int, float)) and not isinstance(value, bool))
            or (digits_allowed and isinstance(value, str))):
        return "Must be a number."
    return None


@extend_schema_field(OpenApiTypes.INT)
class CollectionField(serializers.PrimaryKeyRelatedField):
    """A collection id of the request's company (another company's id is "does not exist")."""

    def get_queryset(self):
        company = self.context.get("company")
        return Collection.objects.for_company(company) if company is not None else Collection.objects.none()
