"""Production settings from the environment: ``manage.py check --deploy`` is clean with the environment
docs/deployment.md documents, and names the four transport-security gaps without HTTPS=true."""
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]


def _check_deploy(**overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_"))}
    env.update({"DEBUG": "false", "SECRET_KEY": "k" * 20 + "Q7v!pX2#mL9$wR4^zT6&yB8*nC1@dF3%hJ5", "HTTPS": "",
                "ALLOWED_HOSTS": "bots.example.com", "CSRF_TRUSTED_ORIGINS": "https://bots.example.com",
                "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                # check --deploy does not connect; a URL keeps the embedded server from starting.
                "DATABASE_URL": "postgres://saas_bot:saas_bot@127.0.0.1:1/saas_bot", **overrides})
    env = {k: v for k, v in env.items() if v != ""}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_production_environment():
    result = _check_deploy(HTTPS="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_check_deploy_names_the_gaps():
    result = _check_deploy()
    assert result.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in result.stderr + result.stdout, code


def test_each_setting_can_be_set_on_its_own():
    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'saas_bot.settings'); "
            "from django.conf import settings as s; "
            "print(s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE)")
    env = {**os.environ, "HTTPS": "true", "SECURE_SSL_REDIRECT": "false", "SECURE_PROXY_SSL_HEADER": "X-Scheme",
           "SECURE_HSTS_SECONDS": "600", "DATABASE_URL": "postgres://u:p@127.0.0.1:1/x"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split("\n")[0] == "False ('HTTP_X_SCHEME', 'https') 600 True", out.stderr


def test_ssl_redirect_spares_the_health_check(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/admin/login/").status_code == 301
    assert client.get("/healthz").status_code != 301
    assert client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 301  # no proxy header set
