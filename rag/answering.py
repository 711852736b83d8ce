"""Answers from retrieved chunks, as a LangChain chain.

With ``OPENAI_API_KEY`` set: prompt | ``ChatOpenAI`` (any OpenAI-compatible
endpoint via ``OPENAI_BASE_URL``, model ``LLM_MODEL``); the provider's reported
token usage is what gets billed. Without it: an extractive answerer (also a
Runnable) that replies with the most relevant passages. Both cite sources
(document title, section or page). When retrieval finds nothing relevant the
answer is a refusal ("I don't know"), never a guess.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from django.conf import settings
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from rag.extractive import compose_answer
from rag.language import company_language, detect_language, is_cross_lingual, source_language_note
from rag.relevance import is_answerable
from rag.retrieval import RetrievedChunk, chunk_search
from rag.usage import llm_usage
from saas_bot.errors import ProviderUnavailable
from tenants.models import Company

NOT_FOUND_TEXT = ("Sorry, I don't know the answer to that: I could not find it in our documentation. "
                  "Try rephrasing the question, or contact our support team.")
LLM_NOT_FOUND_MARKER = "NOT_FOUND"
EXTRACTIVE_MODEL = "extractive"
# Questions of at most this many words may lean on the previous question for retrieval...
FOLLOW_UP_MAX_WORDS = 8
# ...if they read as a follow-up: they open with a connective ("and with a password?", "what about
# teams?") or refer back with a pronoun ("can I change it?"). A complete new question ("Can I pay with
# PayPal?") is never answered with the previous topic.
FOLLOW_UP_OPENERS = ("and", "or", "but", "also", "so", "then", "what about", "how about", "same for", "and if")
FOLLOW_UP_REFERENCES = frozenset({"it", "its", "that", "this", "these", "those", "they", "them", "their",
                                  "there", "one", "ones", "same", "else"})


def is_follow_up(question: str) -> bool:
    """True if ``question`` reads as a follow-up of the previous turn (see FOLLOW_UP_OPENERS / _REFERENCES)."""
    words = re.findall(r"[\w']+", question.lower())
    if not words or len(words) > FOLLOW_UP_MAX_WORDS:
        return False
    text = " ".join(words)
    return text.startswith(tuple(o + " " for o in FOLLOW_UP_OPENERS)) or text in FOLLOW_UP_OPENERS or \
        any(w in FOLLOW_UP_REFERENCES for w in words)

SYSTEM_PROMPT = (
    "{persona}\n\n"
    "Answer the user's question using only the numbered context passages. Be concise. "
    "Write the answer in the language of the question, even when the passages are in another language. "
    "If the passages do not contain the answer, reply with exactly " + LLM_NOT_FOUND_MARKER + " and nothing else."
)
HUMAN_PROMPT = "Context:\n{context}\n\n{history}Question: {question}"


@dataclass
class Source:
    """Where an answer came from: the file, its title, and the section or page."""

    document: str
    title: str
    section: str | None
    page: int | None
    score: float


@dataclass
class Answer:
    """An answer with its sources and token usage (provider-reported; 0 for extractive answers)."""

    text: str
    sources: list[Source]
    refused: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = EXTRACTIVE_MODEL
    chunks: list[RetrievedChunk] = field(default_factory=list)
    tokens_estimated: bool = False  # the provider reported no usage: counted by rag.usage

    def sources_as_dicts(self) -> list[dict]:
        """Sources as JSON-ready dicts (document, title, section, page, score)."""
        return [asdict(s) for s in self.sources]


def _sources(chunks: list[RetrievedChunk]) -> list[Source]:
    seen, out = set(), []
    for c in chunks:
        key = (c.document_id, c.section, c.page)
        if key in seen:
            continue
        seen.add(key)
        out.append(Source(document=c.file_name, title=c.document_title, section=c.section or None, page=c.page,
                          score=round(c.score, 4)))
    return out


def _context(chunks: list[RetrievedChunk]) -> str:
    blocks = []
    for i, c in enumerate(chunks, start=1):
        where = " / ".join(x for x in (c.document_title, c.section, f"page {c.page}" if c.page else "") if x)
        blocks.append(f"[{i}] ({where})\n{c.text}")
    return "\n\n".join(blocks)


def _question_terms(chunks: list[RetrievedChunk]) -> dict[str, float]:
    """The question's lexemes as the retriever saw them (typos corrected), weight 1 each."""
    extra = chunks[0].extra or {}
    terms = {t: 1.0 for t in extra.get("query_terms") or []}
    for original, corrected in (extra.get("corrected_terms") or {}).items():
        terms.pop(original, None)
        terms[corrected] = 1.0
    return terms


def _chunks_by_id(ids: list[int]) -> dict[int, RetrievedChunk]:
    """Chunks that retrieval did not return but an answer quotes, as RetrievedChunks with score 0."""
    from rag.models import Chunk

    rows = Chunk.objects.filter(id__in=ids).select_related("document")
    return {c.id: RetrievedChunk(chunk_id=c.id, document_id=c.document_id, document_title=c.document.title,
                                 file_name=c.document.file_name, section=c.section, page=c.page, text=c.text,
                                 score=0.0, dense_similarity=0.0, bm25=0.0) for c in rows}


def extractive_chain() -> Runnable:
    """A Runnable: {"chunks": [...], "question_language": ISO 639-1 code or None} -> {"text", "used"}.

    The text is the passage of the best chunk's section that answers the question (rag/extractive.py:
    whole sentences and lines, steps kept with their lead-in, the splitter's overlap written once,
    at most ``RAG_ANSWER_MAX_CHARS`` characters). When the question is in another language than the
    passage, a line in the question's language says the source is in English (rag/language.py).
    """

    def run(inputs: dict) -> dict:
        chunks: list[RetrievedChunk] = inputs["chunks"]
        passage = compose_answer(chunks, question_terms=_question_terms(chunks))
        text = passage.text
        note = source_language_note(inputs.get("question_language"), detect_language(text[:600]))
        if note:
            text = f"{note}\n\n{text}"
        by_id = {c.chunk_id: c for c in chunks}
        missing = [i for i in passage.chunk_ids if i not in by_id]
        if missing:  # a section read because the passage announced it: cite it too
            by_id.update(_chunks_by_id(missing))
        return {"text": re.sub(r"\n{3,}", "\n\n", text).strip(),
                "used": [by_id[i] for i in passage.chunk_ids if i in by_id]}

    return RunnableLambda(run, name="extractive_answer")


def llm_chain() -> Runnable:
    """prompt | ChatOpenAI, built from settings (OPENAI_API_KEY, OPENAI_BASE_URL, LLM_MODEL)."""
    from langchain_openai import ChatOpenAI

    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", HUMAN_PROMPT)])
    model = ChatOpenAI(model=settings.LLM_MODEL, api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL,
                       timeout=settings.LLM_TIMEOUT_SECONDS, max_retries=2, temperature=0,
                       max_tokens=settings.LLM_MAX_COMPLETION_TOKENS)
    return prompt | model


def _history_block(history: list[tuple[str, str]] | None) -> str:
    if not history:
        return ""
    lines = [f"User: {q}\nAssistant: {a}" for q, a in history]
    return "Earlier in this conversation:\n" + "\n".join(lines) + "\n\n"


def answer_question(*, company: Company, question: str, persona: str = "", k: int = 5,
                    history: list[tuple[str, str]] | None = None, not_found_text: str = NOT_FOUND_TEXT,
                    document_ids: list[int] | None = None) -> Answer:
    """Answer ``question`` from ``company``'s documents.

    Args:
        persona: the bot's system prompt (used by the chat model).
        k: chunks retrieved as context.
        history: earlier (question, answer) turns of the same conversation, oldest first.
        document_ids: answer only from these documents (None = all the company's).

    Returns:
        An Answer; ``refused`` is True (with ``not_found_text``) when nothing relevant was found
        or the chat model said the context does not contain the answer.

    Raises:
        ProviderUnavailable(code="llm_unavailable"): the chat model failed after its retries.
    """
    question_language = detect_language(question)
    cross_lingual = is_cross_lingual(question_language, company_language(company.id))
    chunks = chunk_search(company=company, query=question, k=k, document_ids=document_ids,
                          cross_lingual=cross_lingual)
    answerable = is_answerable(question=question, results=chunks)
    if not answerable and history and is_follow_up(question):
        # A short follow-up ("and on the free plan?") that finds nothing on its own is searched
        # together with the previous question. Its answer is used only if it comes from a document
        # the question alone already pointed at, so a new, unrelated question is never answered
        # with the previous topic.
        follow_up = chunk_search(company=company, query=f"{history[-1][0]}\n{question}", k=k,
                                 document_ids=document_ids, cross_lingual=cross_lingual)
        own_documents = {c.document_id for c in chunks}
        if follow_up and follow_up[0].document_id in own_documents and \
                is_answerable(question=question, results=follow_up):
            chunks, answerable = follow_up, True
    if not answerable:
        return Answer(text=not_found_text, sources=[], refused=True, chunks=chunks)
    if not settings.OPENAI_API_KEY:
        result = extractive_chain().invoke({"chunks": chunks, "question_language": question_language})
        return Answer(text=result["text"], sources=_sources(result["used"]), refused=False, chunks=chunks)
    inputs = {"persona": persona or "You are a helpful support assistant.", "context": _context(chunks),
              "history": _history_block(history), "question": question}
    try:
        message = llm_chain().invoke(inputs)
    except Exception as exc:
        raise ProviderUnavailable(code="llm_unavailable", message=f"The chat model failed: {exc}") from exc
    text = (message.content if isinstance(message.content, str) else str(message.content)).strip()
    model_name = (message.response_metadata or {}).get("model_name") or settings.LLM_MODEL
    tokens = llm_usage(message=message, model=model_name, prompt_messages=[
        ("system", SYSTEM_PROMPT.format(**inputs)), ("user", HUMAN_PROMPT.format(**inputs))])
    prompt_tokens, completion_tokens = tokens.prompt_tokens, tokens.completion_tokens
    if not text or text.strip().rstrip(".") == LLM_NOT_FOUND_MARKER:
        return Answer(text=not_found_text, sources=[], refused=True, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens, model=model_name, chunks=chunks,
                      tokens_estimated=tokens.estimated)
    return Answer(text=text, sources=_sources(chunks[:3]), refused=False, prompt_tokens=prompt_tokens,
                  completion_tokens=completion_tokens, model=model_name, chunks=chunks,
                  tokens_estimated=tokens.estimated)
