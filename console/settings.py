"""One settings file, driven by environment variables (see .env.example).

PostgreSQL and Redis always: DATABASE_URL and REDIS_URL name them, or `make run` starts both
under DATA_DIR and writes their URLs to DATA_DIR/services.env, read here when the variables
are unset (so `DATA_DIR=... manage.py ...` in another terminal uses the same ones).
"""

import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# The fallback is flagged by `manage.py check --deploy` (its prefix is Django's marker).
SECRET_KEY = env("SECRET_KEY", "django-insecure-demo-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env("SITE_URL", "http://localhost:" + env("PORT", "8000")).rstrip("/")
SITE_NAME = env("SITE_NAME", "GPU Console")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "channels",
    "teams",
    "billing",
    "pods",
    "serverless",
    "referrals",
    "hosting",
    "api",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "console.csp.ConsoleCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "teams.middleware.AuditContextMiddleware",
    "referrals.middleware.ReferralCookieMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

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
                "console.context_processors.console",
            ],
        },
    },
]


def embedded_services(data_dir: Path) -> dict[str, str]:
    """The URLs `make run` wrote for the PostgreSQL and Redis it runs under DATA_DIR."""
    try:
        lines = (data_dir / "services.env").read_text().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


EMBEDDED_SERVICES = embedded_services(DATA_DIR)
NO_SERVICE = (
    "{name} is not set and {path} names no {what}: start the console with `make run` (it runs "
    "PostgreSQL and Redis under DATA_DIR), set DATA_DIR to the one `make run` uses, or set "
    "{name}."
)


def service_url(name: str, what: str) -> str:
    url = env(name) or EMBEDDED_SERVICES.get(name, "")
    if not url:
        path = DATA_DIR / "services.env"
        raise ImproperlyConfigured(NO_SERVICE.format(name=name, path=path, what=what))
    return url


DATABASES = {
    "default": dj_database_url.parse(
        service_url("DATABASE_URL", "PostgreSQL database"),
        conn_max_age=int(env("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database (postgres://...).")
# A pool shared by a process's threads, for ASGI servers (make run sets it for daphne): there
# persistent connections pile up one per thread and exhausted PostgreSQL.
DATABASE_POOL_SIZE = int(env("DATABASE_POOL_SIZE", "0"))
if DATABASE_POOL_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "teams.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# django-allauth: e-mail is the login, no usernames.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env("EMAIL_VERIFICATION", "optional" if DEBUG else "mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "teams.adapters.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
# A phone's clock drifts and a code typed near the end of its 30 s step arrives in the next one;
# RFC 6238 (section 5.2) recommends accepting one step either side.
MFA_TOTP_TOLERANCE = 1

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = DATA_DIR / "media"

# E-mail: SMTP when EMAIL_HOST is set, else printed to the console log.
EMAIL_HOST = env("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(env("EMAIL_PORT", "587"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Redis carries the Celery broker and the channel layer, so a worker's pushes reach the web
# process's websockets.
REDIS_URL = service_url("REDIS_URL", "Redis")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Every periodic task, in one place. Apps add theirs below as they land.
CELERY_BEAT_SCHEDULE: dict = {
    # Pods: dead processes -> exited/failed, lost ones (host or console restart) started again,
    # stop/terminate timers. By hand: `manage.py reconcile_pods [--every 5]`.
    "reconcile-pods": {"task": "pods.tasks.reconcile_pods_task", "schedule": 5.0},
    # Billing: auto-recharges and low-balance e-mails due but missed by the per-entry hook
    # (broker down, worker restart). By hand: `manage.py billing_sweep`.
    "billing-sweep": {"task": "billing.tasks.billing_sweep_task", "schedule": 300.0},
    # Metering: charge every pod and network volume per whole minute, then stop the pods of
    # teams short of funds and remove what grace periods ended. By hand: `manage.py meter`.
    "meter": {"task": "pods.tasks.meter_task", "schedule": crontab()},
    # Referrals: commissions on usage charged since the last run, credited to referrers and
    # template creators. By hand: `manage.py process_commissions`.
    "process-commissions": {
        "task": "referrals.tasks.process_commissions_task",
        "schedule": 300.0,
    },
    # API: Idempotency-Key rows older than IDEMPOTENCY_KEY_TTL_HOURS are deleted (a key is
    # free again after that anyway). By hand: `manage.py expire_idempotency_keys`.
    "expire-idempotency-keys": {
        "task": "api.tasks.expire_idempotency_keys_task",
        "schedule": 3600.0,
    },
    # Serverless: running jobs past their execution timeout become TIMED_OUT (their worker is
    # told to stop them); results past retention are deleted. By hand: `manage.py sweep_jobs`.
    "sweep-serverless-jobs": {"task": "serverless.tasks.sweep_jobs_task", "schedule": 5.0},
    # Serverless: start workers (min always on, flex for the queue), retire idle flex ones,
    # replace stale, unhealthy and dead ones (re-queue their jobs once), stop workers still
    # running a timed-out job. By hand: `manage.py autoscale`. A pass still queued when the
    # next is due is dropped (expires): passes never pile up behind a slow one.
    "serverless-autoscale": {
        "task": "serverless.tasks.autoscale_task",
        "schedule": 3.0,
        "options": {"expires": 3.0},
    },
    # Hosting: machines whose agent sent no heartbeat for 90 s go offline (metering charges
    # nothing there) with a downtime interval; reliability scores follow the rolling window.
    # By hand: `manage.py check_heartbeats`.
    "check-heartbeats": {"task": "hosting.tasks.check_heartbeats_task", "schedule": 30.0},
    # Hosting: unlist machines 4 days before booked maintenance, remind renters a day before,
    # list them again after. By hand: `manage.py maintenance_sweep`.
    "maintenance-sweep": {"task": "hosting.tasks.maintenance_sweep_task", "schedule": crontab()},
}

# Serverless: how long a worker's job-take / job-stop long-poll is held (the SDK gives up at
# 90 s), and how long /runsync waits for its job when the request names no ?wait=.
SERVERLESS_JOB_TAKE_HOLD = float(env("SERVERLESS_JOB_TAKE_HOLD", "50"))
SERVERLESS_RUNSYNC_WAIT = float(env("SERVERLESS_RUNSYNC_WAIT", "90"))
# Serverless autoscaler, in seconds: a ready worker silent (no ping, no job request) this long
# is unhealthy and replaced (the SDK pings every 10 s); a worker that never comes up this long
# after placement is replaced (a first start installs its Python packages); a worker still
# running a job this long after its execution timeout has its pod stopped.
SERVERLESS_WORKER_UNHEALTHY_AFTER = float(env("SERVERLESS_WORKER_UNHEALTHY_AFTER", "60"))
SERVERLESS_WORKER_START_TIMEOUT = float(env("SERVERLESS_WORKER_START_TIMEOUT", "900"))
SERVERLESS_TIMEOUT_GRACE = float(env("SERVERLESS_TIMEOUT_GRACE", "10"))
# Job webhooks (serverless.webhooks) refuse private, loopback and link-local addresses; on for
# tests and installs whose webhook receivers sit on a private network.
SERVERLESS_WEBHOOK_ALLOW_PRIVATE = env_bool("SERVERLESS_WEBHOOK_ALLOW_PRIVATE", False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    # Per API key (or signed-in user), counted in the Redis cache shared by all workers.
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api": env("API_RATE_LIMIT", "600/min")},
}
# How long a POST's Idempotency-Key is remembered (its response replayed), in hours.
IDEMPOTENCY_KEY_TTL_HOURS = int(env("IDEMPOTENCY_KEY_TTL_HOURS", "24"))
SPECTACULAR_SETTINGS = {
    "TITLE": f"{SITE_NAME} API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["api.schema.only_rest_api"],
}

# 403/404 are one INFO line, idle runs of periodic tasks DEBUG (console/logs.py).
_QUIET_TASKS = {"filters": ["quiet_periodic_tasks"]}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "quiet_client_errors": {"()": "console.logs.QuietClientErrors"},
        "quiet_periodic_tasks": {"()": "console.logs.QuietPeriodicTasks"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["quiet_client_errors"]},
        "celery.app.trace": _QUIET_TASKS,
        "celery.worker.strategy": _QUIET_TASKS,
        "celery.beat": _QUIET_TASKS,
    },
}

# Security. A SITE_URL on https:// is production: it switches on the SSL redirect, HSTS and
# __Host- cookie names (each overridable). `manage.py check --deploy` is clean with them.
HTTPS_SITE = SITE_URL.startswith("https://")
SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS_SITE)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000" if HTTPS_SITE else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS_SITE)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS_SITE)
# The console's cookies are host-only (no *_COOKIE_DOMAIN), so pod hosts never receive them.
# On https they are also __Host- named: browsers take such a cookie only without a Domain
# attribute, so no pod host or sibling subdomain can plant (toss) a session or CSRF cookie.
if SESSION_COOKIE_SECURE and HTTPS_SITE:
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
CSRF_COOKIE_HTTPONLY = True  # scripts read the token from the page, never from the cookie
# Pods' HTTP ports are served on <pod>-<port>.PROXY_DOMAIN (pods.connect.proxy): an origin per
# port, away from the console's. Unset, a console on a loopback name serves them under
# "localhost" (browsers resolve *.localhost to loopback, no DNS); elsewhere there is no default
# (production needs a registrable domain of its own and a wildcard DNS record and certificate,
# see README) and pods are reached only through the sandboxed path form /proxy/.
SITE_HOST = urlsplit(SITE_URL).hostname or ""
PROXY_DOMAIN = env(
    "PROXY_DOMAIN", "localhost" if SITE_HOST in {"localhost", "127.0.0.1", "::1"} else ""
)
# One cache for every process (Redis): single-use proxy sign-in tokens and allauth's rate
# limits must be seen by all of them.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
CACHES["default"]["LOCATION"] = REDIS_URL

# Host uids (and network volumes' gids) of process-runtime pods: a range no account uses,
# between systemd-nspawn's container range and systemd's "foreign" range.
POD_UID_BASE = int(env("POD_UID_BASE", "2000000000"))
POD_UID_COUNT = int(env("POD_UID_COUNT", "65536"))

# Product settings.
INVITE_VALID_DAYS = int(env("INVITE_VALID_DAYS", "7"))
FUNDS_GRACE_DAYS = int(env("FUNDS_GRACE_DAYS", "7"))
FUNDS_NETWORK_VOLUME_GRACE_DAYS = int(env("FUNDS_NETWORK_VOLUME_GRACE_DAYS", "7"))
DEFAULT_SPEND_LIMIT_PER_HOUR = Decimal(env("DEFAULT_SPEND_LIMIT_PER_HOUR", "80"))
# Billing. The hourly spend limit rises with paid history: "paid:limit,..." in dollars (a team
# that has paid >= $500 in total may spend $200/h); staff override per team in the admin.
SPEND_LIMIT_TIERS = env(
    "SPEND_LIMIT_TIERS", f"0:{DEFAULT_SPEND_LIMIT_PER_HOUR},500:200,2000:500,10000:2000"
)
MIN_TOP_UP = Decimal(env("MIN_TOP_UP", "10"))
MIN_INVOICE_AMOUNT = Decimal(env("MIN_INVOICE_AMOUNT", "5000"))
INVOICE_DUE_DAYS = int(env("INVOICE_DUE_DAYS", "30"))
AUTO_RECHARGE_MAX_FAILURES = int(env("AUTO_RECHARGE_MAX_FAILURES", "3"))
# Stripe. Without STRIPE_SECRET_KEY the console runs against the local emulator (localstripe)
# at STRIPE_API_BASE; `manage.py stripe_emulator` starts it and registers our webhook.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env("STRIPE_API_BASE").rstrip("/")

# Content-Security-Policy of console pages (django-csp; console.csp adds Stripe.js and the pod
# hosts from the current settings): scripts only from our static files (an inline one needs
# nonce="{{ request.csp_nonce }}"), no eval; no <style> blocks (style="" attributes stay: the
# templates and Bootstrap use them; the terminal page alone allows xterm.js's own <style>
# elements); forms post only to the console and, after a sign-in redirect, to pod hosts;
# nothing frames the console.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Fernet key(s) for secrets kept in the database (registry passwords), comma-separated, newest
# first, to rotate. Unset: derived from SECRET_KEY with HKDF-SHA256, so changing SECRET_KEY
# makes saved registry passwords unreadable; set this to rotate SECRET_KEY independently.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY")
if not FIELD_ENCRYPTION_KEY:
    from base64 import urlsafe_b64encode

    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    FIELD_ENCRYPTION_KEY = urlsafe_b64encode(
        HKDF(SHA256(), 32, salt=b"console.field-encryption", info=b"fernet").derive(
            SECRET_KEY.encode()
        )
    ).decode()
DEMO_USER_EMAIL = env("DEMO_USER_EMAIL", "demo@example.com")
DEMO_USER_PASSWORD = env("DEMO_USER_PASSWORD", "gpu-demo-pass")
# Referrals: how long a `?ref=` link is remembered, and how old a ledger id must have been seen
# before commission processing reads up to it (longer than any transaction writing the ledger).
REFERRAL_COOKIE_NAME = "referral_code"
REFERRAL_COOKIE_DAYS = int(env("REFERRAL_COOKIE_DAYS", "30"))
REFERRAL_COMMIT_LAG_SECONDS = int(env("REFERRAL_COMMIT_LAG_SECONDS", "120"))
