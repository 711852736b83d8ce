"""Companies (platform staff) and the team of a company: members and invitations (owners manage them)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse

from billing.models import Subscription
from saas_bot.admin_save import RefusalShownAdmin, SaveRefused, with_save_refusal
from saas_bot.errors import ServiceError
from tenants import services
from tenants.access import current_company, is_platform_staff
from tenants.admin_scoping import CompanyScopedAdmin, StaffOnlyAdmin
from tenants.models import ROLE_HELP, Company, Invitation, Membership


class CompanyForm(forms.ModelForm):
    """Name, slug, active. Validates only; a new company is created by ``company_create`` in the admin's save
    (the service owns the slug rule: lowercase letters, digits, hyphens; unique)."""

    class Meta:
        model = Company
        fields = ["name", "slug", "is_active"]


@admin.register(Company)
class CompanyAdmin(RefusalShownAdmin, StaffOnlyAdmin):
    list_display = ("name", "slug", "is_active", "plan", "subscription_status", "members", "bots", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    actions = ["activate", "suspend"]
    form = CompanyForm
    fields = ("name", "slug", "is_active")
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _members=Count("memberships", distinct=True), _bots=Count("bots", distinct=True))

    def _live(self, obj):
        if not hasattr(obj, "_live_subscription"):
            obj._live_subscription = (Subscription.objects.filter(company=obj, status__in=Subscription.LIVE_STATUSES)
                                      .select_related("plan").first())
        return obj._live_subscription

    @admin.display(description="Plan")
    def plan(self, obj):
        live = self._live(obj)
        return live.plan.name if live else "—"

    @admin.display(description="Subscription")
    def subscription_status(self, obj):
        live = self._live(obj)
        return live.get_status_display() if live else "none"

    @admin.display(description="Members", ordering="_members")
    def members(self, obj):
        return obj._members

    @admin.display(description="Bots", ordering="_bots")
    def bots(self, obj):
        return obj._bots

    def get_form(self, request, obj=None, change=False, **kwargs):
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

    def save_form(self, request, form, change):
        """Adding: ``company_create`` (its slug refusal shown beside the slug), then the active flag through
        ``company_set_active``."""
        if change:
            return super().save_form(request, form, change)
        try:
            company = services.company_create(name=form.cleaned_data["name"], slug=form.cleaned_data["slug"])
        except ServiceError as exc:
            raise SaveRefused.of(exc, field="slug") from None
        if not form.cleaned_data.get("is_active", True):
            services.company_set_active(company=company, active=False)
        return company

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()  # name, slug, is_active as edited

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)  # adding: company_create made the row

    @admin.action(description="Activate selected companies")
    def activate(self, request, queryset):
        for company in queryset:
            services.company_set_active(company=company, active=True)
        messages.success(request, f"Activated {queryset.count()} company(ies).")

    @admin.action(description="Suspend selected companies (bots stop answering, members lose access)")
    def suspend(self, request, queryset):
        for company in queryset:
            services.company_set_active(company=company, active=False)
        messages.success(request, f"Suspended {queryset.count()} company(ies).")


class TeamAdmin(RefusalShownAdmin, CompanyScopedAdmin):
    """Owners manage the team; admins and viewers see it. The role field says what each role may do."""

    editor_roles = (Membership.Role.OWNER,)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "role" and field is not None:
            field.help_text = ROLE_HELP
        return field


class MembershipForm(forms.ModelForm):
    """A member's role. Validates only; ``MembershipAdmin.save_model`` changes it with ``membership_set_role``."""

    class Meta:
        model = Membership
        fields = ["role"]


@admin.register(Membership)
class MembershipAdmin(TeamAdmin):
    list_display = ("email", "name", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "user__username", "user__first_name", "user__last_name")
    actions = ["export_csv"]

    def get_fields(self, request, obj=None):
        if obj is None:  # only staff add members directly; owners invite
            return ["company", "user", "role"]
        return ["email", "name", "role"] + (["company"] if is_platform_staff(request.user) else [])

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["email", "name"] + (["company"] if is_platform_staff(request.user) else [])

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = MembershipForm
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

    def has_add_permission(self, request, *args):
        return is_platform_staff(request.user)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "company")

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj):
        return obj.user.email or obj.user.username

    @admin.display(description="Name")
    def name(self, obj):
        return obj.user.get_full_name() or "—"

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        if "role" in form.changed_data:
            try:  # e.g. the last owner stepping down: shown beside the role, nothing changed
                services.membership_set_role(membership=Membership.objects.get(pk=obj.pk), role=obj.role)
            except ServiceError as exc:
                raise SaveRefused.of(exc, field="role") from None

    def delete_model(self, request, obj):
        try:
            services.membership_remove(membership=obj)
        except ServiceError as exc:
            request._team_error = exc
            messages.error(request, f"{exc.message} ({exc.code})")

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            self.delete_model(request, membership)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_team_error", None):
            from django.http import HttpResponseRedirect

            return HttpResponseRedirect(reverse("admin:tenants_membership_changelist"))
        return super().response_delete(request, obj_display, obj_id)


class InvitationForm(forms.ModelForm):
    """Email and role. Validates only; the admin's save sends the invitation (``services.invitation_create``)."""

    class Meta:
        model = Invitation
        fields = ["email", "role"]


@admin.register(Invitation)
class InvitationAdmin(TeamAdmin):
    list_display = ("email", "role", "state", "invited_by", "created_at", "expires_at")
    list_filter = ("role",)
    search_fields = ("email",)
    form = InvitationForm

    def get_fields(self, request, obj=None):
        fields = ["email", "role"]
        return (["company"] if is_platform_staff(request.user) and obj is None else []) + fields

    def has_change_permission(self, request, obj=None):
        return False  # revoke (delete) and invite again instead

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invited_by", "company")

    @admin.display(description="State")
    def state(self, obj):
        from django.utils import timezone

        if obj.accepted_at:
            return f"accepted {obj.accepted_at:%Y-%m-%d}"
        return "expired" if obj.expires_at <= timezone.now() else "waiting"

    def get_form(self, request, obj=None, change=False, **kwargs):
        return with_save_refusal(request, super().get_form(request, obj, change=change, **kwargs))

    def save_form(self, request, form, change):
        """``invitation_create``: the row, and the email with the one-time link after commit. Its refusal
        (already a member, ...) is shown on the form."""
        company = form.cleaned_data.get("company") if is_platform_staff(request.user) else current_company(request)
        if company is None:
            raise SaveRefused(["Choose the company to invite to."])
        try:
            return services.invitation_create(
                company=company, email=form.cleaned_data["email"], role=form.cleaned_data["role"],
                invited_by=request.user,
                accept_url=lambda token: request.build_absolute_uri(reverse("invitation-accept", args=[token])))
        except ServiceError as exc:
            raise SaveRefused.of(exc) from None

    def save_model(self, request, obj, form, change):
        messages.success(request, f"Invitation sent to {obj.email}; the link works once, for 7 days.")

    def save_related(self, request, form, formsets, change):
        pass
