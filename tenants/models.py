"""The tenant (Company) and who belongs to it."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from saas_bot.models import CompanyQuerySet


class Company(models.Model):
    """A customer of the platform; every tenant-owned row points here."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True, help_text="Short name used in URLs and commands.")
    is_active = models.BooleanField(default=True, help_text="Suspended companies' bots do not answer.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one company."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ADMIN)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "company"], name="membership_unique_user_company")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.company} ({self.role})"


# What each role may do, shown beside the role on the membership and invitation forms (one text, docs/admin.md "Roles").
ROLE_HELP = ("Owner: everything in the company, including the team (invite, change roles, remove). "
             "Admin: bots, documents, collections, the playground; sees conversations, usage and the team. "
             "Viewer: reads everything and exports lists, changes nothing. Every role signs in to the admin; "
             "no \"Staff status\" is needed.")


class Invitation(models.Model):
    """An owner's invitation of a person (by email) to join the company with a role.

    The link carries a random one-time token; only its SHA-256 is stored. Accepting it (once,
    before ``expires_at``) sets the invitee's password and creates their Membership.
    """

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Where the invitation link is sent.")
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.ADMIN,
                            help_text="Owner: everything and the team. Admin: bots and documents. Viewer: reads only.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_role_display()})"
