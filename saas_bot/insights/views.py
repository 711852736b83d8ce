"""Admin pages beyond ModelAdmins: the playground, the usage dashboard and knowledge gaps (issue 5).

Every view is wrapped in ``admin.site.admin_view`` (login required) in ``insights/urls.py``. Company
members work in ``tenants.access.current_company(request)``; platform staff choose any company
(``?company=<id>``). Another company's bot is a 404. Viewers read; asking in the playground (it
costs usage) and writing answers need an owner/admin role (``tenants.access.can_edit``). The views
parse input, call one service or selector and render; the rules live in ``bots``, ``billing``, ``rag``.
"""
from __future__ import annotations

import datetime as dt
import functools
from importlib import resources

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from billing.money import cost_currency, count_format, money_format
from billing.selectors import (
    rows_to_csv,
    usage_current,
    usage_daily_by_bot,
    usage_limits_all,
    usage_limits_csv_rows,
)
from bots.knowledge_gaps import knowledge_gap_resolve, knowledge_gaps
from bots.models import Bot, Conversation, KnowledgeGapResolution, Message
from bots.answers import QUESTION_MAX_CHARS, bot_ask
from bots.selectors import bot_names
from saas_bot.errors import NoLiveSubscription, ServiceError
from saas_bot.ids import parse_id
from tenants.access import can_edit, current_company, is_platform_staff
from tenants.models import Company

PLAYGROUND_SESSION_KEY = "playground_conversation:{bot_id}"
LIMIT_LABELS = {
    "max_bots": "Bots",
    "max_documents": "Documents",
    "max_storage_bytes": "Storage",
    "max_messages_per_period": "Messages this period",
    "max_tokens_per_period": "Tokens this period",
    "max_messages_per_end_user_per_day": "Busiest end user today (messages)",
}


def _context(request: HttpRequest, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


def _scope(request: HttpRequest) -> tuple[Company | None, list[Company]]:
    """(company to show, companies to choose from). Staff choose with ``?company=<id>``; members get theirs."""
    if is_platform_staff(request.user):
        companies = list(Company.objects.order_by("name"))
        chosen = request.GET.get("company") or request.POST.get("company")
        company = next((c for c in companies if str(c.pk) == chosen), None)
        return company or current_company(request) or (companies[0] if companies else None), companies
    company = current_company(request)
    if company is None:
        raise PermissionDenied("You are not a member of any company.")
    return company, []


def _bot_in_scope(request: HttpRequest, bot_id: int) -> Bot:
    bots = Bot.objects.select_related("company")
    if not is_platform_staff(request.user):
        company = current_company(request)
        if company is None:
            raise Http404("Bot not found.")
        bots = bots.for_company(company)
    bot = bots.filter(id=bot_id).first()
    if bot is None:
        raise Http404("Bot not found.")
    return bot


def _with_company(url: str, request: HttpRequest, company: Company | None) -> str:
    if company is not None and is_platform_staff(request.user):
        return f"{url}?{urlencode({'company': company.pk})}"
    return url


# Playground -------------------------------------------------------------------------------------------------


def playground_index(request: HttpRequest) -> HttpResponse:
    """The bots one can try: the company's (members) or every company's (staff)."""
    bots = Bot.objects.select_related("company").order_by("company__name", "name")
    if not is_platform_staff(request.user):
        company, _ = _scope(request)
        bots = bots.for_company(company)
    return TemplateResponse(request, "insights/playground_index.html",
                            _context(request, "Playground", bots=list(bots)))


def playground(request: HttpRequest, bot_id: int) -> HttpResponse:
    """Ask one bot a question through the Telegram pipeline (``bots.answers.bot_ask``, channel "playground").

    The conversation id is kept in the session per bot, so follow-up questions use its memory; the
    "new conversation" button ends it. Service errors and limit replies are shown as messages.
    """
    bot = _bot_in_scope(request, bot_id)
    editable = can_edit(request.user, bot.company)
    key = PLAYGROUND_SESSION_KEY.format(bot_id=bot.id)
    conversation = (Conversation.objects.filter(id=request.session.get(key), bot=bot,
                                                channel=Conversation.Channel.PLAYGROUND, ended_at__isnull=True)
                    .first() if request.session.get(key) else None)
    question = ""
    if request.method == "POST":
        if not editable:
            raise PermissionDenied("Viewers cannot ask in the playground (questions count against the plan).")
        if request.POST.get("action") == "new":
            if conversation is not None:
                Conversation.objects.filter(id=conversation.id).update(ended_at=timezone.now())
            request.session.pop(key, None)
            messages.info(request, "New conversation: earlier questions are no longer used as memory.")
            return redirect(request.path)
        question = request.POST.get("question", "")
        try:
            result = bot_ask(bot=bot, question=question, channel=Conversation.Channel.PLAYGROUND,
                         conversation=conversation)
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            request.session[key] = result.message.conversation_id
            message = result.message
            if message.status == Message.Status.LIMIT_REACHED:
                messages.warning(request, "A plan limit is reached: end users get the limit message. "
                                          "See the usage dashboard.")
            elif message.status == Message.Status.NO_SUBSCRIPTION:
                messages.error(request, "The company has no live subscription: the bot does not answer.")
            elif message.status == Message.Status.NOT_FOUND:
                messages.warning(request, "Not found in the documents: the question is listed in knowledge gaps.")
            return redirect(request.path)
    turns = list(conversation.messages.order_by("created_at", "id")) if conversation else []
    return TemplateResponse(request, "insights/playground.html", _context(
        request, f"Playground: {bot}", bot=bot, turns=turns, editable=editable, question=question,
        question_max_chars=QUESTION_MAX_CHARS))


# Usage ------------------------------------------------------------------------------------------------------


@functools.cache
def _plotly_js() -> bytes:
    return resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()


def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js as shipped inside the plotly package (nothing is fetched from a CDN); cached a day."""
    import plotly

    response = HttpResponse(_plotly_js(), content_type="application/javascript")
    response["Cache-Control"] = "private, max-age=86400"
    response["ETag"] = f'"plotly-{plotly.__version__}"'
    return response


def _period_days(current: dict) -> tuple[dt.date, dt.date]:
    """The period's first and last UTC day (an open-ended period: up to today)."""
    start = current["period_start"].date()
    if current["period_end"] is not None:
        end = (current["period_end"] - dt.timedelta(microseconds=1)).date()
    else:
        end = timezone.now().date()
    return start, max(start, end)


# A chart spans at least this many days, so one day of data is a bar among dates, not the whole width.
CHART_MIN_DAYS = 7
CHART_HEIGHT_PX = 320
# Bar width on a date axis, in milliseconds (80 % of a day; plotly's default on one point is a sliver).
CHART_BAR_WIDTH_MS = 0.8 * 24 * 3600 * 1000
CHART_EMPTY_TEXT = {
    "messages": "No messages yet this period. Ask a question in the playground or through the bot to see them here.",
    "tokens": "No chat-model tokens this period. Answers quoted from your documents without a chat model use "
              "none; when the platform answers with a chat model, the provider's reported tokens are counted here.",
}


def chart_days(rows: list[dict], start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The days a usage chart shows: from the first to the last day with data, widened to ``CHART_MIN_DAYS``
    (backwards from the last day, never before the period's ``start``), clipped to the period."""
    days = [r["day"] for r in rows]
    first, last = (min(days), max(days)) if days else (start, start)
    first = max(start, min(first, last - dt.timedelta(days=CHART_MIN_DAYS - 1)))
    if (last - first).days + 1 < CHART_MIN_DAYS:
        last = min(end, first + dt.timedelta(days=CHART_MIN_DAYS - 1))
    return first, last


def _charts(company: Company, start: dt.date, end: dt.date) -> list[str]:
    """Messages and tokens per day (plotly stacked bars, one colour per bot) as HTML fragments.

    The x axis covers the days with data (``chart_days``), one tick per day up to two weeks, with room for
    the last label; numbers have thousands separators. A metric with no data this period gets a sentence
    saying so instead of an empty 0-1 axis (the tokens chart in extractive mode)."""
    import plotly.graph_objects as go
    from django.utils.html import format_html

    rows = usage_daily_by_bot(company=company, start=start, end=end, bots=bot_names(company=company))
    charts = []
    for metric, title in (("messages", "Messages per day"), ("tokens", "Tokens per day")):
        with_data = [r for r in rows if r[metric]]
        if not with_data:
            charts.append(format_html('<div id="usage-{}-chart" class="usage-chart-empty"><h3>{}</h3>'
                                      '<p class="insights-muted">{}</p></div>', metric, title,
                                      CHART_EMPTY_TEXT[metric]))
            continue
        first, last = chart_days(with_data, start, end)
        figure = go.Figure()
        for bot_id in dict.fromkeys(r["bot_id"] for r in with_data):
            series = [r for r in with_data if r["bot_id"] == bot_id]
            figure.add_trace(go.Bar(x=[r["day"].isoformat() for r in series], y=[r[metric] for r in series],
                                    name=series[0]["bot"], width=CHART_BAR_WIDTH_MS,
                                    hovertemplate="%{x|%b %d}: %{y:,d}<extra>%{fullData.name}</extra>"))
        span = (last - first).days + 1
        days_total: dict = {}
        for r in with_data:
            days_total[r["day"]] = days_total.get(r["day"], 0) + r[metric]
        # Whole numbers only: one tick per unit up to 10 (plotly would write 0.2, 0.4... as "0"), else its own steps.
        y_ticks = dict(tick0=0, dtick=1) if max(days_total.values()) <= 10 else {}
        figure.update_layout(
            title=title, barmode="stack", height=CHART_HEIGHT_PX, margin=dict(l=60, r=40, t=50, b=50),
            # the legend above the plot, not beside it: the plot keeps the card's whole width
            legend=dict(title_text="Bot", orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
            showlegend=True, separators=".,",
            xaxis=dict(type="date", tickformat="%b %d", automargin=True,
                       dtick=86400000 if span <= 14 else None, ticklabelmode="instant",
                       range=[(dt.datetime.combine(first, dt.time()) - dt.timedelta(hours=12)).isoformat(),
                              (dt.datetime.combine(last, dt.time()) + dt.timedelta(hours=12)).isoformat()]),
            yaxis=dict(rangemode="tozero", tickformat=",d", automargin=True, **y_ticks))
        charts.append(figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"usage-{metric}-chart",
                                     default_width="100%", default_height=f"{CHART_HEIGHT_PX}px",
                                     config={"displaylogo": False, "responsive": True}))
    return charts


def _limit_rows(limits: list[dict]) -> list[dict]:
    return [{**row, "label": LIMIT_LABELS.get(row["limit"], row["limit"]),
             "bar": min(100.0, row["percent"] or 0.0),
             "level": "error" if (row["percent"] or 0) >= 100 else "warning" if (row["percent"] or 0) >= 80 else "ok"}
            for row in limits]


def usage_dashboard(request: HttpRequest) -> HttpResponse:
    """The current period against every plan limit and daily charts per bot; staff also get every company."""
    company, companies = _scope(request)
    current, charts = None, []
    if company is not None:
        try:
            current = usage_current(company=company)
        except NoLiveSubscription as exc:
            messages.warning(request, f"{company}: {exc.message}")
        else:
            current["limits"] = _limit_rows(current["limits"])
            current["cost_display"] = money_format(current["cost"], cost_currency(), precise=True)
            current["credits_display"] = count_format(current["credits"])
            start, end = _period_days(current)
            charts = _charts(company, start, end)
    all_companies = None
    if is_platform_staff(request.user):
        all_companies = [{**row, "limits": _limit_rows(row["limits"])} for row in usage_limits_all()]
    return TemplateResponse(request, "insights/usage.html", _context(
        request, "Usage", company=company, companies=companies, current=current, charts=charts,
        all_companies=all_companies, is_staff_view=is_platform_staff(request.user)))


def usage_export(request: HttpRequest) -> HttpResponse:
    """Staff CSV: every company against its limits, or (``?company=<id>``) one company's days per bot."""
    if not is_platform_staff(request.user):
        raise PermissionDenied("CSV export is for platform staff.")
    chosen = request.GET.get("company")
    if chosen:
        company_id = parse_id(chosen)
        company = Company.objects.filter(pk=company_id).first() if company_id is not None else None
        if company is None:
            raise Http404("Company not found.")
        try:
            current = usage_current(company=company)
        except NoLiveSubscription:
            rows = []
        else:
            start, end = _period_days(current)
            rows = [{"day": r["day"].isoformat(), "bot": r["bot"], "messages": r["messages"], "tokens": r["tokens"]}
                    for r in usage_daily_by_bot(company=company, start=start, end=end,
                                                bots=bot_names(company=company))]
        name = f"usage-{company.slug}-daily.csv"
    else:
        rows = usage_limits_csv_rows(usage_limits_all())
        name = "usage-companies.csv"
    response = HttpResponse(rows_to_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# Knowledge gaps ---------------------------------------------------------------------------------------------


def _ids(raw: str) -> list[int]:
    return [number for part in raw.replace(",", " ").split() if (number := parse_id(part)) is not None]


def knowledge_gaps_view(request: HttpRequest) -> HttpResponse:
    """Grouped unanswered / 👎 questions, most frequent first; an owner/admin answers a group once."""
    company, companies = _scope(request)
    editable = company is not None and can_edit(request.user, company)
    here = _with_company(reverse("admin-knowledge-gaps"), request, company)
    if request.method == "POST":
        if not editable:
            raise PermissionDenied("Viewers cannot write answers.")
        try:
            resolution = knowledge_gap_resolve(company=company, message_ids=_ids(request.POST.get("message_ids", "")),
                                               question=request.POST.get("question", ""),
                                               answer=request.POST.get("answer", ""), user=request.user)
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Saved as the Q&A document “{resolution.question}”: it is indexed like any "
                                      f"other document and answers the next such question.")
        return redirect(here)
    groups = []
    if company is not None:
        try:
            groups = knowledge_gaps(company=company)
        except ServiceError as exc:
            messages.error(request, exc.message)
    resolutions = (list(KnowledgeGapResolution.objects.for_company(company).select_related("document", "created_by")
                        [:20]) if company is not None else [])
    return TemplateResponse(request, "insights/knowledge_gaps.html", _context(
        request, "Knowledge gaps", company=company, companies=companies, groups=groups, resolutions=resolutions,
        editable=editable, is_staff_view=is_platform_staff(request.user)))
