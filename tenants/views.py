"""The invitation link: the invitee sets a password (Django's SetPasswordForm) and joins the company."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import SetPasswordForm
from django.shortcuts import redirect, render

from saas_bot.errors import NotFound
from tenants.services import invitation_accept, invitation_get


def invitation_accept_view(request, token: str):
    """GET: the form (a password for a new account, a confirmation for an existing one); POST: accept.

    An unknown, used or expired token shows the same 404 page (``invitation_get``).
    """
    context = dict(admin.site.each_context(request), title="Accept the invitation")
    try:
        invitation = invitation_get(token=token)
    except NotFound as exc:
        return render(request, "tenants/invitation_accept.html", {**context, "error": exc.message}, status=404)
    User = get_user_model()
    existing = User.objects.filter(email__iexact=invitation.email).order_by("id").first()
    form = None if existing else SetPasswordForm(User(username=invitation.email, email=invitation.email),
                                                 request.POST or None)
    if request.method == "POST" and (form is None or form.is_valid()):
        try:
            membership = invitation_accept(token=token,
                                           password=form.cleaned_data["new_password1"] if form else None)
        except NotFound as exc:
            return render(request, "tenants/invitation_accept.html", {**context, "error": exc.message}, status=404)
        if form is not None:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("admin:index")
        return redirect("admin:login")
    return render(request, "tenants/invitation_accept.html",
                  {**context, "invitation": invitation, "form": form, "existing": existing})


def company_switch_view(request):
    """POST ``company_id``: work in that company (a member of several chooses here); others are ignored."""
    from django.http import HttpResponseNotAllowed

    from tenants.access import SESSION_COMPANY_KEY, membership_for

    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        company_id = int(request.POST.get("company_id", ""))
    except ValueError:
        company_id = None
    if company_id is not None and membership_for(request.user, company_id) is not None:
        request.session[SESSION_COMPANY_KEY] = company_id
    return redirect("admin:index")
