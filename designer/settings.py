"""Django settings for Stepwell. Every tunable comes from an environment variable (see README)."""
from __future__ import annotations

import secrets
import time
from pathlib import Path

import dj_database_url

from designer.env import env_bool, env_int, env_list, env_str, write_private

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STEPWELL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(50))
    for _ in range(50):  # another process may have created it a moment ago and be writing it
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty; delete it to have a new key made")


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "designer.apps.DesignerConfig",
    "engine.apps.EngineConfig",
    "sandbox.apps.SandboxAppConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "designer.middleware.ApiErrorsAsJson",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "designer.middleware.LoginThrottleMiddleware",
]

ROOT_URLCONF = "designer.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
ASGI_APPLICATION = "designer.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the worker read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "designer.throttling.LoginThrottleBackend",  # refuses sign-ins after too many failures
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "workflow-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/monaco", BASE_DIR / "node_modules" / "monaco-editor" / "min"),
    ("vendor/x6", BASE_DIR / "node_modules" / "@antv" / "x6" / "dist"),
    ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist"),
    ("vendor/diff", BASE_DIR / "node_modules" / "diff" / "libesm"),   # jsdiff, as ES modules
]
STATICFILES_DIRS = [d for d in STATICFILES_DIRS if Path(d[1] if isinstance(d, tuple) else d).exists()]
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "agents.auth.BearerKeyAuthentication",   # API keys (agents/), Authorization: Bearer <key>
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["designer.api.parsers.LimitedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "designer.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["designer.throttling.UserRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stepwell API",
    "DESCRIPTION": "Design workflows and run Python steps in single-use VMs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

REDIS_URL = env_str("REDIS_URL")
CHANNEL_LAYERS = (
    {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}}
    if REDIS_URL
    else {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
)

# Largest accepted workflow definition, in bytes of JSON.
MAX_DEFINITION_BYTES = env_int("STEPWELL_MAX_DEFINITION_BYTES", 1_000_000, 1_000, 50_000_000)
MAX_DEFINITION_NODES = env_int("STEPWELL_MAX_DEFINITION_NODES", 1000, 1, 100_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_DEFINITION_BYTES * 2 + 65536

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
SPECTACULAR_SETTINGS.update({
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
})

# --- Runs: task queue, worker, server-wide limits (engine/) -------------------------------------
INSTALLED_APPS += ["django_tasks", "django_tasks_db"]
TASKS = {"default": {"BACKEND": "django_tasks_db.backend.DatabaseBackend", "QUEUES": ["default"]}}
# The worker waits on this unix datagram socket between polls; enqueuers send one byte to it
# right after their transaction commits, so pickup does not wait for the poll interval.
STEPWELL_WAKE_SOCKET = env_str("STEPWELL_WAKE_SOCKET", str(VAR_DIR / "worker-wake.sock"))
# Seconds between queue polls when nobody wakes the worker.
STEPWELL_WORKER_INTERVAL = env_int("STEPWELL_WORKER_INTERVAL_MS", 500, 1, 60_000) / 1000
# Runs (and step tests) a worker process executes at once; 0 = the sandbox pool size.
STEPWELL_WORKER_CONCURRENCY = env_int("STEPWELL_WORKER_CONCURRENCY", 0, 0, 256)
# A running run whose worker has not renewed its lease for this long is taken over by another
# worker and resumed from its last finished step (engine/resume.py), at most this many times.
STEPWELL_RUN_LEASE_S = env_int("STEPWELL_RUN_LEASE_S", 30, 1, 3600)
STEPWELL_MAX_RUN_RESUMES = env_int("STEPWELL_MAX_RUN_RESUMES", 3, 0, 100)
# Sandbox driver for steps: "" = the sandbox service when it answers, else SANDBOX_DRIVER locally.
STEPWELL_SANDBOX_DRIVER = env_str("STEPWELL_SANDBOX_DRIVER", "") or None
# Server-wide caps on what workflow settings and nodes may ask for.
STEPWELL_MAX_STEP_TIMEOUT_S = env_int("STEPWELL_MAX_STEP_TIMEOUT_S", 600, 1, 600)
STEPWELL_MAX_STEP_MEMORY_MIB = env_int("STEPWELL_MAX_STEP_MEMORY_MIB", 2048, 128, 8192)
STEPWELL_DEFAULT_STEP_TIMEOUT_S = env_int("STEPWELL_DEFAULT_STEP_TIMEOUT_S", 60, 1, 600)
STEPWELL_DEFAULT_STEP_MEMORY_MIB = env_int("STEPWELL_DEFAULT_STEP_MEMORY_MIB", 512, 128, 8192)
STEPWELL_MAX_HTTP_TIMEOUT_S = env_int("STEPWELL_MAX_HTTP_TIMEOUT_S", 30, 1, 120)
STEPWELL_MAX_HTTP_RESPONSE_BYTES = env_int("STEPWELL_MAX_HTTP_RESPONSE_BYTES", 5_000_000, 1_000, 100_000_000)
# Networks (comma-separated CIDRs) that HTTP steps and code egress may reach although they are
# loopback, private, link-local...; default none. Parsed by sandbox.egress (shared with the proxy).
from sandbox.egress import private_networks_from_env  # noqa: E402
STEPWELL_EGRESS_PRIVATE_NETWORKS = private_networks_from_env()
# Mapping caps ({{ expressions }} in parameters): per node, per expression, per interpolated string.
STEPWELL_MAPPING_MAX_EXPRESSIONS = env_int("STEPWELL_MAPPING_MAX_EXPRESSIONS", 1000, 1, 100_000)
STEPWELL_MAPPING_MAX_EXPRESSION_CHARS = env_int("STEPWELL_MAPPING_MAX_EXPRESSION_CHARS", 2000, 16, 100_000)
STEPWELL_MAPPING_MAX_STRING_CHARS = env_int("STEPWELL_MAPPING_MAX_STRING_CHARS", 1_000_000, 1_000, 100_000_000)
STEPWELL_HOOK_TIMEOUT_S = env_int("STEPWELL_HOOK_TIMEOUT_S", 30, 1, 120)
# Bearer token a Prometheus scraper sends to GET /metrics (staff sessions need none); empty: none.
STEPWELL_METRICS_TOKEN = env_str("STEPWELL_METRICS_TOKEN", "")
# Origin the hook URLs shown by the API point at (e.g. https://hooks.example.com). In production,
# a host name of its own that no session cookie is sent to: hook answers are written by workflow
# owners. Empty: the origin of the request that asks for the URL.
STEPWELL_HOOK_BASE_URL = env_str("STEPWELL_HOOK_BASE_URL", "").rstrip("/")
if STEPWELL_HOOK_BASE_URL and not STEPWELL_HOOK_BASE_URL.startswith(("https://", "http://")):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"STEPWELL_HOOK_BASE_URL must start with https:// (got {STEPWELL_HOOK_BASE_URL!r})")
STEPWELL_MAX_FOREACH_ITEMS = env_int("STEPWELL_MAX_FOREACH_ITEMS", 1000, 1, 100_000)
STEPWELL_MAX_FOREACH_CONCURRENCY = env_int("STEPWELL_MAX_FOREACH_CONCURRENCY", 4, 1, 64)
# Independent branches of one run that execute at the same time.
STEPWELL_MAX_BRANCH_CONCURRENCY = env_int("STEPWELL_MAX_BRANCH_CONCURRENCY", 4, 1, 64)
# Fan-out bounds: one thread pool per run (every For each item and parallel branch shares it),
# For each nesting depth (checked at save and at run), step records per run, runs per user at
# once (queued + running), retry attempts and back-off.
STEPWELL_RUN_THREADS = env_int("STEPWELL_RUN_THREADS", 8, 1, 256)
STEPWELL_MAX_FOREACH_DEPTH = env_int("STEPWELL_MAX_FOREACH_DEPTH", 4, 1, 32)
STEPWELL_MAX_STEPS_PER_RUN = env_int("STEPWELL_MAX_STEPS_PER_RUN", 10_000, 10, 10_000_000)
STEPWELL_MAX_ACTIVE_RUNS_PER_USER = env_int("STEPWELL_MAX_ACTIVE_RUNS_PER_USER", 20, 1, 100_000)
STEPWELL_MAX_RETRY_ATTEMPTS = env_int("STEPWELL_MAX_RETRY_ATTEMPTS", 10, 1, 10)
STEPWELL_MAX_RETRY_DELAY_S = env_int("STEPWELL_MAX_RETRY_DELAY_S", 300, 0, 3600)
# Seconds between scheduler passes (schedule triggers, lease reaping) inside the worker.
STEPWELL_SCHEDULER_INTERVAL = env_int("STEPWELL_SCHEDULER_INTERVAL_MS", 5000, 100, 600_000) / 1000

# --- Python runtimes: package allow-list, wheel uploads, layer builds (runtimes/) -------------
INSTALLED_APPS += ["runtimes.apps.RuntimesConfig"]
# Uploaded wheels are kept here (by sha256); the worker reads them when it builds.
STEPWELL_WHEEL_DIR = env_str("STEPWELL_WHEEL_DIR", str(VAR_DIR / "wheels"))
STEPWELL_MAX_WHEEL_BYTES = env_int("STEPWELL_MAX_WHEEL_MB", 100, 1, 2048) * 1024 * 1024
# Layers are built under SANDBOX_CACHE_DIR/layers (default ~/.cache/stepwell), where drivers look.
STEPWELL_RUNTIME_BUILD_TIMEOUT_S = env_int("STEPWELL_RUNTIME_BUILD_TIMEOUT_S", 1800, 30, 7200)
# Built layers kept besides the active one (older ones are deleted after a build).
STEPWELL_RUNTIME_KEEP_LAYERS = env_int("STEPWELL_RUNTIME_KEEP_LAYERS", 5, 1, 100)
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["RunStatusEnum"] = "engine.status.Status"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["RuntimeStatusEnum"] = "runtimes.models.Runtime.Status"

# --- Deployment: HTTPS, content security policy, rate and size limits (designer/) --------------
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto: secure cookies, HSTS, redirect to
# https. With it, DEBUG off and a real secret key, `manage.py check --deploy` reports nothing.
STEPWELL_HTTPS = env_bool("STEPWELL_HTTPS", False)
if STEPWELL_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("STEPWELL_HSTS_SECONDS", 31_536_000, 0, 63_072_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("STEPWELL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("STEPWELL_HSTS_PRELOAD", True)
# Every page gets this policy (django-csp); a response that sets its own (hooks) keeps it.
# Monaco needs inline styles, data: fonts and images, and its workers start from data: URLs;
# Redoc's worker starts from a blob: URL. No inline or eval'd script anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Rates ("count/period", period in s, m, h, d, e.g. "10/5m" or "600/min"); see designer/throttling.py.
STEPWELL_LOGIN_FAILURE_RATE = env_str("STEPWELL_LOGIN_FAILURE_RATE", "10/5m")
STEPWELL_API_RATE = env_str("STEPWELL_API_RATE", "1200/min")
STEPWELL_HOOK_RATE = env_str("STEPWELL_HOOK_RATE", "120/min")
if REDIS_URL:  # shared by every process, so the rate limits hold across them
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
# Largest request body, refused (413) by designer.middleware.BodyTooLarge before Django reads it:
# room for the largest definition, and on the wheel-upload paths for the largest wheel.
STEPWELL_MAX_REQUEST_BYTES = env_int("STEPWELL_MAX_REQUEST_BYTES", DATA_UPLOAD_MAX_MEMORY_SIZE + 1024 * 1024,
                                     1024, 4 * 1024**3)
STEPWELL_MAX_UPLOAD_BYTES = STEPWELL_MAX_WHEEL_BYTES + 1024 * 1024
STEPWELL_UPLOAD_PATH_PREFIXES = ["/api/packages/upload/", "/admin/runtimes/"]

# --- Governance: audit log and instance policies (governance/) ---------------------------------
INSTALLED_APPS += ["governance.apps.GovernanceConfig"]
INSTALLED_APPS += ["agents.apps.AgentsConfig"]   # API keys: Bearer auth, per-key quotas (agents/)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ApiKeyStatusEnum"] = "agents.models.STATUSES"
# Audit events older than this are pruned by the worker (a checkpoint event keeps the chain verifiable).
STEPWELL_AUDIT_RETENTION_DAYS = env_int("STEPWELL_AUDIT_RETENTION_DAYS", 365, 1, 36_500)
# "full": execution events keep the code that ran; "hash": only its SHA-256.
STEPWELL_AUDIT_KEEP_CODE = env_str("STEPWELL_AUDIT_KEEP_CODE", "full").strip().lower()
if STEPWELL_AUDIT_KEEP_CODE not in ("full", "hash"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"STEPWELL_AUDIT_KEEP_CODE must be full or hash (got {STEPWELL_AUDIT_KEEP_CODE!r})")
# Inputs, outputs, stdout and stderr in an execution event are cut to this many bytes each.
STEPWELL_AUDIT_MAX_FIELD_BYTES = env_int("STEPWELL_AUDIT_MAX_FIELD_BYTES", 65_536, 256, 10_000_000)

# --- Governance: secrets and metering (governance/secrets.py, governance/usage.py) --------------
# Secrets are encrypted with STEPWELL_SECRETS_KEY (comma-separated Fernet keys, newest first), or
# with the keys in var/secrets_key, made 0600 on first use when the variable is unset.
# Cost of one session-second of sandbox time on the usage page and API (a decimal, no minimum).
def _price() -> "Decimal":
    import re
    from decimal import Decimal

    raw = (env_str("STEPWELL_PRICE_PER_SESSION_SECOND", "0.000017") or "").strip()
    value = Decimal(raw) if re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,18})?", raw) else None
    if value is None:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"STEPWELL_PRICE_PER_SESSION_SECOND must be a decimal number >= 0 (got {raw!r})")
    return value


STEPWELL_PRICE_PER_SESSION_SECOND = _price()
