"""Who may see what: platform staff versus company members (the one rule every admin page and API view uses).

Platform staff are superusers and members of the ``PLATFORM_STAFF_GROUP`` auth group: they see every
company. Everyone else sees only the companies they have a Membership in, with that membership's role.
Company members log into the Django admin too: admin access follows from a membership in an active company
(``may_use_admin``, used by the admin site's permission check and its login form), so nobody has to tick
"Staff status" for a member. Invited members still get ``is_staff=True`` (older code and Django's own
``staff_member_required`` pages expect it); ``is_staff`` alone therefore never means platform staff.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from tenants.models import Company, Membership

PLATFORM_STAFF_GROUP = "Platform staff"
SESSION_COMPANY_KEY = "company_id"
# Roles allowed to change things (viewers only read); owners also manage the team.
EDITOR_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


def is_platform_staff(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """True for active superusers and active members of the ``PLATFORM_STAFF_GROUP`` group."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_platform_staff", None)
    if cached is None:
        cached = user.groups.filter(name=PLATFORM_STAFF_GROUP).exists()
        user._platform_staff = cached
    return cached


def memberships_of(user) -> list[Membership]:
    """The user's memberships (company selected), oldest first; [] for anonymous users."""
    if user is None or not user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=user, company__is_active=True).select_related("company")
                .order_by("created_at", "id"))


def membership_for(user, company: Company | int) -> Membership | None:
    """The user's membership in ``company`` (a Company or its id), or None."""
    company_id = getattr(company, "pk", company)
    return next((m for m in memberships_of(user) if m.company_id == company_id), None)


def current_company(request) -> Company | None:
    """The company a company member works in: the one chosen in the session (``SESSION_COMPANY_KEY``) if
    they are a member of it, else their first membership; None for platform staff without memberships
    and for users with none."""
    memberships = getattr(request, "_memberships", None)
    if memberships is None:
        memberships = request._memberships = memberships_of(request.user)
    chosen = request.session.get(SESSION_COMPANY_KEY) if hasattr(request, "session") else None
    for membership in memberships:
        if membership.company_id == chosen:
            return membership.company
    return memberships[0].company if memberships else None


def role_in(user, company: Company | int | None) -> str | None:
    """The user's role (Membership.Role value) in ``company``, or None if not a member."""
    if company is None:
        return None
    membership = membership_for(user, company)
    return membership.role if membership else None


def can_edit(user, company: Company | int | None) -> bool:
    """Platform staff, or an owner/admin of ``company`` (viewers read only)."""
    return is_platform_staff(user) or role_in(user, company) in EDITOR_ROLES


def may_use_admin(user) -> bool:
    """True when ``user`` may sign in to the admin: active, and platform staff, a member of an active company,
    or ``is_staff`` (Django's own rule, kept for accounts made before issue 16). A member needs no ticked
    "Staff status": membership is the permission."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or is_platform_staff(user):
        return True
    return Membership.objects.filter(user=user, company__is_active=True).exists()
