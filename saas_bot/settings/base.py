"""Django's own settings: the environment, secrets, transport security, apps, database, locale, static
files, cache, logging, e-mail.

``env`` (django-environ) reads every variable; a ``.env`` file in the project root is read when present.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import environ
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _generated_secret(name: str, make) -> str:
    """A development secret kept in var/ so it survives restarts (never used when the env sets it)."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default=None) or _generated_secret("secret_key", lambda: secrets.token_urlsafe(50))
# Bot tokens are encrypted with this Fernet key (cryptography). Production must set it:
# docker-compose.yml refuses to start without it. A lost key makes stored tokens unreadable.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default=None) or _generated_secret(
    "field_encryption.key", lambda: Fernet.generate_key().decode()
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Production behind https (docs/deployment.md). HTTPS=true turns on every transport-security setting that
# `manage.py check --deploy` asks for; each can still be set on its own. gunicorn serves plain HTTP, so in
# production TLS ends at a reverse proxy, which must set (overwrite) X-Forwarded-Proto: that header is
# how Django knows the request came over https (without it SECURE_SSL_REDIRECT would loop).
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
# A load balancer's health check usually speaks plain HTTP to the web process: /healthz is not redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
_proxy_header = env("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto" if HTTPS else "").strip()
SECURE_PROXY_SSL_HEADER = (("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header
                           else None)
# HSTS: a year (hstspreload.org's minimum), subdomains included; "preload" only marks the header as
# eligible: submitting the domain to the browsers' list stays the operator's decision.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=HTTPS)
# Public https origin Telegram reaches us on, e.g. https://bots.example.com (no trailing slash).
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "saas_bot.apps.SaasBotAdminConfig",  # django.contrib.admin with the grouped index (issue 5)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_celery_beat",
    "tenants",
    "billing",
    "bots",
    "rag",
    "saas_bot.insights",
    # The REST API v1 (saas_bot/api, docs/api.md).
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rest_framework_api_key",
    "saas_bot.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's and Swagger UI's, from drf-spectacular-sidecar) are served by the web process
    # itself with WhiteNoise, straight from the installed apps: no collectstatic step, no CDN, no extra server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "saas_bot.urls"
WSGI_APPLICATION = "saas_bot.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "saas_bot" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing.context_processors.limit_alerts",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------
if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    EMBEDDED_DATABASE = False
else:
    from saas_bot.embedded_db import embedded_database_settings

    DATABASES = {"default": embedded_database_settings(var_dir=VAR_DIR)}
    EMBEDDED_DATABASE = True
if env("DATABASE_NAME", default=""):
    # Points a process at another database of the same server (the integration tests' worker uses the test DB).
    DATABASES["default"]["NAME"] = env("DATABASE_NAME")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})["NAME"] = env("TEST_DATABASE_NAME", default="test_saas_bot")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Numbers read as 4,000,000 in the admin and its pages (issue 16); identifiers are shown as text, and numbers
# written into HTML attributes or URLs go through |unlocalize.
USE_THOUSAND_SEPARATOR = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing (collectstatic is optional)
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Redis: the broker (saas_bot/settings/celery_queues.py), Telegram's send slots, the cache.
REDIS_URL = env("REDIS_URL", default="")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    # Shared by every web process, so an API key's throttle counts across gunicorn workers.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {"saas_bot": {"level": env("LOG_LEVEL", default="INFO")}},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "saas_bot.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["saas_bot.api.parsers.SafeJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
}

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="saas_bot <noreply@localhost>")
EMAIL_URL = env("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url("EMAIL_URL"))
