"""Admin add pages whose save calls a service, with the service's refusal shown on the form.

The admin's forms validate (``clean``: no writes, no outside calls) and the save step calls the service
that writes (issue 12). Some refusals are only known when the service runs: Telegram rejects a token in
``bot_connect``, every file of an upload is refused by ``documents_add``. Django's admin shows a form again
only when ``clean`` fails, so such a refusal would be lost, or reported beside a "changed successfully".
``RefusalShownAdmin`` closes the gap:

1. the save step raises ``SaveRefused(errors)`` (the service's messages with their codes);
2. the add or change view's transaction rolls back (Django runs it in ``transaction.atomic``) and the same POST is
   handled again with the form class wrapped by ``with_save_refusal``: its ``clean`` raises those errors, so
   nothing is saved and no service runs the second time, and the page keeps what the user typed.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin

from saas_bot.errors import ServiceError

_REFUSED = "_admin_save_refused"  # request attribute: the SaveRefused of the first pass, for the second


class SaveRefused(Exception):
    """Raised from an admin's ``save_form``/``save_model`` when the service refused: ``errors`` are shown as
    the form's errors (each a sentence ending with the service's code in parentheses), beside ``field`` when
    it names a field of the form, else above the form."""

    def __init__(self, errors: list[str], *, field: str | None = None) -> None:
        super().__init__("; ".join(errors))
        self.errors, self.field = errors, field

    @classmethod
    def of(cls, exc: ServiceError, *, field: str | None = None) -> SaveRefused:
        """The refusal of one service error: its message and code."""
        return cls([f"{exc.message} ({exc.code})"], field=field)


class RefusalShownAdmin(admin.ModelAdmin):
    """A ModelAdmin whose add and change pages show a ``SaveRefused`` raised while saving as form errors.

    Its ``get_form`` must return ``with_save_refusal(request, form_class)`` for every form whose save may
    raise ``SaveRefused``.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SaveRefused as refused:
            setattr(request, _REFUSED, refused)
            return super().changeform_view(request, object_id, form_url, extra_context)


def with_save_refusal(request, form_class: type[forms.BaseForm]) -> type[forms.BaseForm]:
    """``form_class``, or, on the second pass after a ``SaveRefused``, a subclass whose ``clean`` raises the
    refusal's errors (so the admin shows the form again with them and saves nothing)."""
    refused = getattr(request, _REFUSED, None)
    if refused is None:
        return form_class

    class Refused(form_class):
        def clean(self):
            cleaned = super().clean()
            if refused.field in self.fields:
                self.add_error(refused.field, refused.errors)
                return cleaned
            raise forms.ValidationError(refused.errors)

    Refused.__name__ = Refused.__qualname__ = form_class.__name__
    return Refused
