"""Writes on companies, their members and invitations."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Callable

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from saas_bot.errors import NotFound, ValidationFailed
from tenants.models import Company, Invitation, Membership

User = get_user_model()


@transaction.atomic
def company_create(*, name: str, slug: str | None = None) -> Company:
    """Create a company.

    Raises:
        ValidationFailed(code="company_slug_taken"): the slug is in use.
    """
    slug = slug or slugify(name)
    if not slug or slug != slugify(slug) or len(slug) > 60:
        raise ValidationFailed(code="company_slug_invalid",
                               message=f"'{slug}' is not a valid slug: use lowercase letters, digits and hyphens.")
    if Company.objects.filter(slug=slug).exists():
        raise ValidationFailed(code="company_slug_taken", message=f"A company with slug '{slug}' exists.")
    return Company.objects.create(name=name, slug=slug)


def company_set_active(*, company: Company, active: bool) -> Company:
    """Activate or suspend a company. A suspended company's bots do not answer (no live subscription,
    ``billing.services.subscription_get_live``) and its members cannot use the admin."""
    Company.objects.filter(id=company.id).update(is_active=active)
    company.is_active = active
    return company


# An invitation link is valid this long (one week, like the invitations of most SaaS back offices).
INVITATION_TTL = dt.timedelta(days=7)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(*, company: Company, email: str, role: str, invited_by=None,
                      accept_url: Callable[[str], str]) -> Invitation:
    """Invite ``email`` to ``company`` with ``role`` and email them a one-time link (after commit).

    Args:
        accept_url: builds the absolute link from the token, e.g.
            ``lambda t: request.build_absolute_uri(reverse("invitation-accept", args=[t]))``.

    Returns:
        The Invitation (valid ``INVITATION_TTL``); only the token's SHA-256 is stored.

    Raises:
        ValidationFailed(code="invitation_role_invalid" | "invitation_already_member").
    """
    email = User.objects.normalize_email(email).strip().lower()
    if role not in Membership.Role.values:
        raise ValidationFailed(code="invitation_role_invalid", message=f"'{role}' is not a role.")
    if Membership.objects.filter(company=company, user__email__iexact=email).exists():
        raise ValidationFailed(code="invitation_already_member", message=f"{email} is already a member.")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(company=company, email=email, role=role, invited_by=invited_by,
                                               token_hash=_token_hash(token),
                                               expires_at=timezone.now() + INVITATION_TTL)
        link = accept_url(token)
        inviter = getattr(invited_by, "email", "") or "Your colleague"
        transaction.on_commit(lambda: send_mail(
            subject=f"You are invited to {company.name}",
            message=(f"{inviter} invited you to manage {company.name}'s assistant bots as "
                     f"{invitation.get_role_display().lower()}.\n\nSet your password and sign in here "
                     f"(the link works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n{link}\n"),
            from_email=None, recipient_list=[email]))
    return invitation


# Length of a generated owner password (``secrets.token_urlsafe`` bytes: 16 bytes = 22 characters, 128 bits).
OWNER_PASSWORD_BYTES = 16


def company_owner_ensure(*, company: Company, email: str, password: str | None = None) -> tuple[Membership, str | None]:
    """Make ``email`` an owner of ``company`` who can sign in to the admin at once (``company_setup --owner``).

    A new user is created with username = email; without ``password`` a random one is generated (and
    returned, so the caller shows it once). An existing user (same email, any case) keeps their password
    unless ``password`` is given, and becomes owner (a lower role is raised). Admin access follows from
    the membership (``tenants.access.may_use_admin``): ``is_staff`` is left as it is.

    Returns:
        (the owner Membership, the generated password or None when none was generated).

    Raises:
        ValidationFailed(code="owner_email_invalid"): not an email address.
        ValidationFailed(code="owner_password_invalid"): the password fails Django's password validators
            (AUTH_PASSWORD_VALIDATORS); the message lists why. Nothing is stored then.
    """
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    email = User.objects.normalize_email(email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationFailed(code="owner_email_invalid", message=f"'{email}' is not an email address.") from None
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email__iexact=email).order_by("id").first()
        if user is None:
            user = User(username=email[:150], email=email)
        generated = None
        if password is None and (user.pk is None or not user.has_usable_password()):
            password = generated = secrets.token_urlsafe(OWNER_PASSWORD_BYTES)
        if password is not None:
            try:
                validate_password(password, user=user)
            except ValidationError as exc:
                raise ValidationFailed(code="owner_password_invalid", message=" ".join(exc.messages)) from None
            user.set_password(password)
        user.is_active = True
        user.save()
        membership, _ = Membership.objects.update_or_create(user=user, company=company,
                                                            defaults={"role": Membership.Role.OWNER})
    return membership, generated


def invitation_get(*, token: str) -> Invitation:
    """The open invitation for a link's ``token``.

    Raises:
        NotFound(code="invitation_not_found"): unknown, already used, or expired (they look the same).
    """
    invitation = (Invitation.objects.select_related("company")
                  .filter(token_hash=_token_hash(token), accepted_at__isnull=True,
                          expires_at__gt=timezone.now(), company__is_active=True).first())
    if invitation is None:
        raise NotFound(code="invitation_not_found",
                       message="This invitation link is invalid, expired or was used already.")
    return invitation


def invitation_accept(*, token: str, password: str | None) -> Membership:
    """Accept an invitation: create (or reuse) the user with that email, set the password, add the membership.

    The user gets ``is_staff=True`` (Django's admin login requires it; ``tenants.access`` decides what they
    see). An existing user keeps their password when ``password`` is None. The token works once.

    Raises:
        NotFound(code="invitation_not_found").
    """
    with transaction.atomic():
        invitation = invitation_get(token=token)
        invitation = Invitation.objects.select_for_update().get(id=invitation.id)
        if invitation.accepted_at is not None:
            raise NotFound(code="invitation_not_found", message="This invitation link was used already.")
        user = User.objects.filter(email__iexact=invitation.email).order_by("id").first()
        if user is None:
            user = User(username=invitation.email[:150], email=invitation.email)
        user.is_staff = True
        if password is not None:
            user.set_password(password)
        user.save()
        membership, _ = Membership.objects.update_or_create(user=user, company=invitation.company,
                                                            defaults={"role": invitation.role})
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
    return membership


def membership_set_role(*, membership: Membership, role: str) -> Membership:
    """Change a member's role.

    Raises:
        ValidationFailed(code="invitation_role_invalid"): not a role.
        ValidationFailed(code="membership_last_owner"): the company would have no owner left.
    """
    if role not in Membership.Role.values:
        raise ValidationFailed(code="invitation_role_invalid", message=f"'{role}' is not a role.")
    with transaction.atomic():
        _ensure_other_owner(membership, leaving=role != Membership.Role.OWNER)
        Membership.objects.filter(id=membership.id).update(role=role)
        membership.role = role
    return membership


def membership_remove(*, membership: Membership) -> None:
    """Remove a member from the company (their user account stays).

    Raises:
        ValidationFailed(code="membership_last_owner"): the last owner cannot be removed.
    """
    with transaction.atomic():
        _ensure_other_owner(membership, leaving=True)
        membership.delete()


def _ensure_other_owner(membership: Membership, *, leaving: bool) -> None:
    if not leaving or membership.role != Membership.Role.OWNER:
        return
    owners = (Membership.objects.select_for_update().filter(company_id=membership.company_id,
                                                            role=Membership.Role.OWNER).exclude(id=membership.id))
    if not owners.exists():
        raise ValidationFailed(code="membership_last_owner",
                               message="A company keeps at least one owner; make someone else owner first.")
