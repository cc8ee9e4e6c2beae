"""A labelled corpus of FAKE credentials and look-alike non-secrets.

Every credential here is generated from a fixed seed, has the provider's published *shape* and
is worthless: none was ever issued by a provider. Where the alphabet allows, the body carries
``FAKE`` so that a human (or a push-protection scanner) can tell at a glance.

Each file is a list of ``(line text, expected rule id or None)``. A line labelled with a rule id
must produce a finding on that line; every other line must produce none. Precision and recall
are measured per (file, line), which is also how detect-secrets reports.
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass
from pathlib import Path

_rng = random.Random(20261123)
ALNUM = string.ascii_letters + string.digits
UPPER_NUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def fake(alphabet: str, n: int) -> str:
    """``n`` characters from ``alphabet``, starting with FAKE when the alphabet allows it."""
    for marker in ("FAKE", "fake"):
        if all(c in alphabet for c in marker) and n > 8:
            return marker + rand(alphabet, n - 4)
    return rand(alphabet, n)


def uuid() -> str:
    h = rand(HEX, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def b64url(obj: str) -> str:
    return base64.urlsafe_b64encode(obj.encode()).decode().rstrip("=")


def pem_body(lines: int = 4) -> list[str]:
    return [rand(B64, 64) for _ in range(lines)] + [rand(B64, 20) + "=="]


@dataclass(frozen=True)
class CorpusFile:
    path: str
    lines: tuple[tuple[str, str | None], ...]

    @property
    def text(self) -> str:
        return "\n".join(line for line, _ in self.lines) + "\n"

    def expected(self) -> set[tuple[int, str]]:
        return {(i, rule) for i, (_, rule) in enumerate(self.lines, 1) if rule}


def _f(path: str, *lines: tuple[str, str | None] | str) -> CorpusFile:
    return CorpusFile(path, tuple((x, None) if isinstance(x, str) else x for x in lines))


def _pem(header: str, rule: str | None, footer: str | None = None, pre: tuple[str, ...] = ()
         ) -> list[tuple[str, str | None] | str]:
    out: list[tuple[str, str | None] | str] = [(f"-----BEGIN {header}-----", rule)]
    out += list(pre)
    out += pem_body()
    out.append(f"-----END {footer or header}-----")
    return out


AWS_ID = "AKIAFAKE" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 12)
AWS_SECRET = fake(ALNUM + "/+", 40)
JWT = ".".join([
    b64url('{"alg":"HS256","typ":"JWT"}'),
    b64url('{"sub":"fake-user-1234","name":"Fake Person","iat":1516239022}'),
    rand(URLSAFE, 43),
])
GCP_PEM = "\\n".join(["-----BEGIN PRIVATE KEY-----", *pem_body(), "-----END PRIVATE KEY-----"])

POSITIVE_FILES: list[CorpusFile] = [
    _f("app/.env",
       "# FAKE credentials used by hullguard's tests; none of them work",
       (f"AWS_ACCESS_KEY_ID={AWS_ID}", "HG-SECRET-001"),
       (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "HG-SECRET-002"),
       (f"GITHUB_TOKEN=ghp_{fake(ALNUM, 36)}", "HG-SECRET-014"),
       (f"GH_OAUTH=gho_{fake(ALNUM, 36)}", "HG-SECRET-015"),
       (f"GH_USER_TOKEN=ghu_{fake(ALNUM, 36)}", "HG-SECRET-016"),
       (f"GH_APP_TOKEN=ghs_{fake(ALNUM, 36)}", "HG-SECRET-017"),
       (f"GH_REFRESH=ghr_{fake(ALNUM, 36)}", "HG-SECRET-018"),
       (f"GH_FINE=github_pat_{fake(ALNUM, 22)}_{rand(ALNUM, 59)}", "HG-SECRET-019"),
       (f"GITLAB_TOKEN=glpat-{fake(URLSAFE, 20)}", "HG-SECRET-020"),
       (f"GITLAB_DEPLOY=gldt-{fake(URLSAFE, 20)}", "HG-SECRET-021"),
       (f"RUNNER_TOKEN=glrt-{fake(URLSAFE, 20)}", "HG-SECRET-022"),
       (f"RUNNER_REG=GR1348941{fake(URLSAFE, 20)}", "HG-SECRET-023"),
       (f"TRIGGER=glptt-{rand(HEX, 40)}", "HG-SECRET-024"),
       (f"BITBUCKET_APP_PASSWORD=ATBB{fake(ALNUM, 32)}", "HG-SECRET-029"),
       (f"SLACK_BOT_TOKEN=xoxb-{rand(string.digits, 12)}-{rand(string.digits, 13)}-{fake(ALNUM, 24)}",
        "HG-SECRET-033"),
       (f"SLACK_USER_TOKEN=xoxp-{rand(string.digits, 12)}-{rand(string.digits, 12)}-"
        f"{rand(string.digits, 13)}-{rand(HEX, 32)}", "HG-SECRET-034"),
       (f"SLACK_APP_TOKEN=xapp-1-A{rand(UPPER_NUM, 10)}-{rand(string.digits, 13)}-{rand(HEX, 64)}",
        "HG-SECRET-035"),
       (f"SLACK_WEBHOOK=https://hooks.slack.com/services/T{rand(UPPER_NUM, 10)}/B{rand(UPPER_NUM, 10)}/"
        f"{fake(ALNUM, 24)}", "HG-SECRET-038"),
       (f"STRIPE_SECRET_KEY=sk_live_{fake(ALNUM, 24)}", "HG-SECRET-039"),
       (f"STRIPE_RESTRICTED=rk_live_{fake(ALNUM, 24)}", "HG-SECRET-040"),
       (f"STRIPE_TEST=sk_test_{fake(ALNUM, 24)}", "HG-SECRET-041"),
       (f"STRIPE_WEBHOOK_SECRET=whsec_{fake(ALNUM, 32)}", "HG-SECRET-042"),
       (f"TWILIO_API_KEY=SK{rand(HEX, 32)}", "HG-SECRET-049"),
       (f"TWILIO_AUTH_TOKEN={rand(HEX, 32)}", "HG-SECRET-050"),
       (f"SENDGRID_API_KEY=SG.{fake(URLSAFE, 22)}.{rand(URLSAFE, 43)}", "HG-SECRET-051"),
       (f"MAILGUN_KEY=key-{rand(HEX, 32)}", "HG-SECRET-052"),
       (f"MAILCHIMP_KEY={rand(HEX, 32)}-us14", "HG-SECRET-053"),
       (f"NPM_TOKEN=npm_{fake(ALNUM, 36)}", "HG-SECRET-060"),
       (f"PYPI_TOKEN=pypi-AgEIcHlwaS5vcmc{fake(URLSAFE, 70)}", "HG-SECRET-062"),
       (f"DOCKERHUB_TOKEN=dckr_pat_{fake(URLSAFE, 27)}", "HG-SECRET-068"),
       (f"SHOPIFY_TOKEN=shpat_{rand(HEX, 32)}", "HG-SECRET-137"),
       (f"SHOPIFY_SECRET=shpss_{rand(HEX, 32)}", "HG-SECRET-138"),
       (f"DIGITALOCEAN_TOKEN=dop_v1_{rand(HEX, 64)}", "HG-SECRET-111"),
       (f"DD_API_KEY={rand(HEX, 32)}", "HG-SECRET-127"),
       (f"DD_APP_KEY={rand(HEX, 40)}", "HG-SECRET-128"),
       (f"NEW_RELIC_API_KEY=NRAK-{rand(UPPER_NUM, 27)}", "HG-SECRET-129"),
       (f"SENTRY_AUTH_TOKEN=sntryu_{rand(HEX, 64)}", "HG-SECRET-132"),
       (f"VAULT_TOKEN=hvs.{fake(URLSAFE, 95)}", "HG-SECRET-105"),
       (f"TF_TOKEN_app_terraform_io={fake(ALNUM, 14)}.atlasv1.{rand(URLSAFE, 67)}", "HG-SECRET-108"),
       (f"OKTA_API_TOKEN=00{fake(URLSAFE, 40)}", "HG-SECRET-136"),
       (f"LINEAR_API_KEY=lin_api_{fake(ALNUM, 40)}", "HG-SECRET-139"),
       (f"OPENAI_API_KEY=sk-proj-{fake(URLSAFE, 40)}T3BlbkFJ{rand(URLSAFE, 40)}", "HG-SECRET-163"),
       (f"ANTHROPIC_API_KEY=sk-ant-api03-{fake(URLSAFE, 93)}AA", "HG-SECRET-164"),
       (f"HF_TOKEN=hf_{fake(string.ascii_letters, 34)}", "HG-SECRET-165"),
       (f"TELEGRAM_BOT_TOKEN={rand(string.digits, 10)}:AA{fake(URLSAFE, 33)}", "HG-SECRET-055"),
       (f"SQUARE_TOKEN=EAAA{fake(URLSAFE, 60)}", "HG-SECRET-043"),
       (f"BRAINTREE=access_token$production${rand(HEX, 16)}${rand(HEX, 32)}", "HG-SECRET-045"),
       (f"ALIBABA_ACCESS_KEY_ID=LTAI{fake(ALNUM, 20)}", "HG-SECRET-115"),
       (f"TENCENT_SECRET_ID=AKID{fake(ALNUM, 32)}", "HG-SECRET-117"),
       (f"DROPBOX_TOKEN=sl.{fake(URLSAFE, 138)}", "HG-SECRET-141"),
       (f"FIGMA_TOKEN=figd_{fake(URLSAFE, 40)}", "HG-SECRET-140"),
       (f"GRAFANA_TOKEN=glsa_{fake(ALNUM, 32)}_{rand(HEX, 8)}", "HG-SECRET-134"),
       (f"PULUMI_ACCESS_TOKEN=pul-{rand(HEX, 40)}", "HG-SECRET-109"),
       (f"DOPPLER_TOKEN=dp.st.{fake(ALNUM, 43)}", "HG-SECRET-110"),
       (f"AGE_KEY=AGE-SECRET-KEY-1{rand('QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L', 58)}", "HG-SECRET-085"),
       (f"DATABRICKS_TOKEN=dapi{rand(HEX, 32)}", "HG-SECRET-123"),
       (f"POSTMAN_API_KEY=PMAK-{rand(HEX, 24)}-{rand(HEX, 34)}", "HG-SECRET-142"),
       (f"GOOGLE_API_KEY=AIza{fake(URLSAFE, 35)}", "HG-SECRET-006"),
       (f"GOOGLE_CLIENT_SECRET=GOCSPX-{fake(URLSAFE, 28)}", "HG-SECRET-007"),
       (f"HEROKU_API_KEY=HRKU-AA{fake(URLSAFE, 58)}", "HG-SECRET-113"),
       (f"NOTION_TOKEN=ntn_{rand(string.digits, 11)}{fake(ALNUM, 35)}", "HG-SECRET-144"),
       (f"SUPABASE_ACCESS_TOKEN=sbp_{rand(HEX, 40)}", "HG-SECRET-125"),
       (f"REPLICATE_API_TOKEN=r8_{fake(ALNUM, 37)}", "HG-SECRET-166"),
       (f"GROQ_API_KEY=gsk_{fake(ALNUM, 52)}", "HG-SECRET-167"),
       (f"SONAR_TOKEN=squ_{rand(HEX, 40)}", "HG-SECRET-146"),
       (f"RUBYGEMS_API_KEY=rubygems_{rand(HEX, 48)}", "HG-SECRET-069"),
       (f"AZURE_CLIENT_SECRET=abc8Q~{fake(ALNUM + '_~.-', 34)}", "HG-SECRET-013"),
       (f"DB_PASSWORD={rand(ALNUM, 12)}!{rand(ALNUM, 6)}", "HG-SECRET-101"),
       "LOG_LEVEL=info",
       "PORT=8080",
       ),
    _f("srv/app/settings.py",
       '"""Settings for the fake app (FAKE credentials for tests)."""',
       "import os",
       (f'SECRET_KEY = "{rand(ALNUM + "!@#%^&*", 50)}"', "HG-SECRET-102"),
       (f'DATABASE_URL = "postgres://app:{rand(ALNUM, 16)}@db.internal:5432/app"', "HG-SECRET-090"),
       (f'REPLICA_URL = "mysql://report:{rand(ALNUM, 14)}@replica:3306/sales"', "HG-SECRET-091"),
       (f'MONGO_URL = "mongodb+srv://svc:{rand(ALNUM, 18)}@cluster0.fake.mongodb.net/db"',
        "HG-SECRET-092"),
       (f'CACHE_URL = "redis://:{rand(ALNUM, 20)}@cache:6379/0"', "HG-SECRET-093"),
       (f'BROKER_URL = "amqp://worker:{rand(ALNUM, 16)}@rabbit:5672/vhost"', "HG-SECRET-094"),
       (f'MSSQL = "Server=sql1;Database=ops;User Id=sa;Password={rand(ALNUM, 14)};"', "HG-SECRET-095"),
       (f'JDBC = "jdbc:postgresql://db:5432/app?user=app&password={rand(ALNUM, 14)}"', "HG-SECRET-096"),
       (f'MIRROR = "https://deploy:{rand(ALNUM, 18)}@mirror.fake.internal/simple"', "HG-SECRET-097"),
       (f'stripe_api_key = "{rand(ALNUM, 32)}"', "HG-SECRET-103"),
       (f'auth_token = "{rand(ALNUM, 40)}"', "HG-SECRET-104"),
       (f'db_password = "{rand(ALNUM, 10)}#{rand(ALNUM, 6)}"', "HG-SECRET-101"),
       (f'session_token = "{JWT}"', "HG-SECRET-087"),
       (f'headers = {{"Authorization": "Bearer {rand(ALNUM, 40)}"}}', "HG-SECRET-088"),
       (f'aws_secret = "{fake(ALNUM + "/+", 40)}"', "HG-SECRET-002"),
       'DEBUG = os.environ.get("DEBUG") == "1"',
       ),
    _f("etc/app/storage.yaml",
       "# FAKE values for hullguard's tests",
       (f"connection: DefaultEndpointsProtocol=https;AccountName=fakestore;AccountKey={rand(B64, 86)}==;"
        "EndpointSuffix=core.windows.net", "HG-SECRET-010"),
       (f"sas_url: https://fakestore.blob.core.windows.net/c?sv=2022-11-02&ss=b&srt=co&sp=rl"
        f"&se=2030-01-01T00:00:00Z&sig={rand(ALNUM, 43)}%3D", "HG-SECRET-012"),
       (f"discord_webhook: https://discord.com/api/webhooks/{rand(string.digits, 18)}/{fake(URLSAFE, 68)}",
        "HG-SECRET-056"),
       (f"atlassian_token: ATATT3{fake(URLSAFE, 180)}", "HG-SECRET-031"),
       (f"grafana_cloud: glc_{fake(ALNUM, 60)}==", "HG-SECRET-133"),
       "replicas: 3",
       "image: registry.fake.internal/app@sha256:" + rand(HEX, 64),
       ),
    _f("home/app/.npmrc",
       "registry=https://registry.npmjs.org/",
       (f"//npm.fake.internal/:_authToken={uuid()}", "HG-SECRET-061"),
       ),
    _f("home/app/.pypirc",
       "[distutils]",
       "index-servers = private",
       "[private]",
       "repository = https://pypi.fake.internal/",
       "username = deploy",
       (f"password = {rand(ALNUM, 20)}", "HG-SECRET-064"),
       ),
    _f("root/.netrc",
       (f"machine git.fake.internal login ci password {rand(ALNUM, 24)}", "HG-SECRET-065"),
       ),
    _f("root/.docker/config.json",
       "{",
       '  "auths": {',
       '    "registry.fake.internal": {',
       (f'      "auth": "{base64.b64encode(("ci:" + rand(ALNUM, 20)).encode()).decode()}"',
        "HG-SECRET-066"),
       "    }",
       "  }",
       "}",
       ),
    _f("root/.kube/config",
       "apiVersion: v1",
       "kind: Config",
       "clusters:",
       "- cluster:",
       "    server: https://k8s.fake.internal:6443",
       "  name: fake",
       "users:",
       "- name: admin",
       "  user:",
       (f"    client-key-data: {base64.b64encode(rand(ALNUM, 300).encode()).decode()}",
        "HG-SECRET-074"),
       "- name: ci",
       "  user:",
       (f"    token: {rand(URLSAFE, 60)}", "HG-SECRET-073"),
       ),
    _f("srv/keys/service-account.json",
       "{",
       '  "type": "service_account",',
       '  "project_id": "fake-project-123",',
       (f'  "private_key_id": "{rand(HEX, 40)}",', "HG-SECRET-005"),
       (f'  "private_key": "{GCP_PEM}\\n",', "HG-SECRET-081"),
       '  "client_email": "fake@fake-project-123.iam.gserviceaccount.com"',
       "}",
       ),
    _f("root/.ssh/id_rsa", *_pem("RSA PRIVATE KEY", "HG-SECRET-076")),
    _f("root/.ssh/id_ecdsa", *_pem("EC PRIVATE KEY", "HG-SECRET-077")),
    _f("root/.ssh/id_dsa", *_pem("DSA PRIVATE KEY", "HG-SECRET-078")),
    _f("root/.ssh/id_ed25519", *_pem("OPENSSH PRIVATE KEY", "HG-SECRET-079")),
    _f("etc/ssl/private/server.key", *_pem("PRIVATE KEY", "HG-SECRET-081")),
    _f("etc/ssl/private/enc.key", *_pem("ENCRYPTED PRIVATE KEY", "HG-SECRET-082")),
    _f("etc/ssl/private/legacy.key",
       *_pem("RSA PRIVATE KEY", "HG-SECRET-076",
             pre=("Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC," + rand(HEX, 32).upper(), ""))),
    _f("root/.gnupg/private.asc",
       ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "HG-SECRET-080"), "",
       *pem_body(), "-----END PGP PRIVATE KEY BLOCK-----"),
    _f("etc/wireguard/wg0.conf",
       "[Interface]",
       "Address = 10.0.0.1/24",
       (f"PrivateKey = {rand(B64, 42)}A=", "HG-SECRET-086"),
       "ListenPort = 51820",
       ),
    _f("etc/shadow",
       "root:*:19000:0:99999:7:::",
       (f"app:$6${rand(ALNUM, 8)}${rand(ALNUM + './', 86)}:19000:0:99999:7:::", "HG-SECRET-099"),
       "nobody:*:19000:0:99999:7:::",
       ),
    _f("root/.m2/settings.xml",
       "<settings><servers><server>",
       "  <id>fake-releases</id>",
       "  <username>deployer</username>",
       (f"  <password>{rand(ALNUM, 20)}</password>", "HG-SECRET-100"),
       "</server></servers></settings>",
       ),
]

NEGATIVE_FILES: list[CorpusFile] = [
    _f("srv/app/config.py",
       'DB_PASSWORD = os.environ["DB_PASSWORD"]',
       "password = get_password()",
       "password: str = ''",
       'PASSWORD = "changeme"',
       'secret_key = "your-secret-key-here"',
       'api_key = settings.API_KEY',
       'token = request.headers.get("token")',
       "password=${PASSWORD}",
       "POSTGRES_PASSWORD={{ .Values.postgres.password }}",
       'api_key: "<YOUR_API_KEY>"',
       "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}",
       "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
       "auth_token = ''",
       'password = "********"',
       "secret: xxxxxxxxxxxxxxxxxxxx",
       "token_url = 'https://oauth.fake.internal/token'",
       "max_token_length = 4096",
       'headers = {"Authorization": "Bearer ${TOKEN}"}',
       'DATABASE_URL = "postgres://localhost:5432/app"',
       'DATABASE_URL = "postgres://app:${DB_PASS}@db:5432/app"',
       'URL = "mysql://root:<password>@localhost/db"',
       "HOMEPAGE = 'https://fake.internal:8443/path'",
       ),
    _f("srv/app/ids.txt",
       f"request_id={uuid()}",
       f"trace_id: {uuid()}",
       f"commit {rand(HEX, 40)}",
       f"sha256sum {rand(HEX, 64)}  app.tar",
       f"md5={rand(HEX, 32)}",
       f"image: fake/app@sha256:{rand(HEX, 64)}",
       f'"integrity": "sha512-{rand(B64, 86)}=="',
       f"payload={base64.b64encode(b'hello world, this is just some text in base64').decode()}",
       "json_b64=" + b64url('{"name":"fake","role":"viewer"}'),
       "color: #deadbeef",
       "channel: C024BE91L",
       f"go.sum-like: h1:{rand(B64, 43)}=",
       "version: 1.2.3-beta.4+build.5678",
       "ghp_ tokens start with ghp_ and have 36 characters",
       "Set STRIPE key like sk_live_... in your environment",
       "key-value store",
       ),
    _f("srv/app/pem_utils.py",
       'RSA_HEADER = "-----BEGIN RSA PRIVATE KEY-----"',
       'if line.startswith("-----BEGIN OPENSSH PRIVATE KEY-----"):',
       "    kind = 'openssh'",
       ),
    _f("srv/app/public.pem", *_pem("PUBLIC KEY", None)),
    _f("srv/app/cert.pem", *_pem("CERTIFICATE", None)),
    _f("srv/app/README.md",
       "# Configuration",
       "Set `password` to your database password, e.g. `password=changeme`.",
       "Tokens look like `glpat-xxxxxxxxxxxxxxxxxxxx`.",
       "Use `export GITHUB_TOKEN=<token>` before running.",
       "Run `docker login -u user -p $PASSWORD registry`.",
       ),
]

# Written after the rules were tuned and never tuned against: an honest check on over-fitting.
HOLDOUT_FILES: list[CorpusFile] = [
    _f("srv/app/application.yml",
       "spring:",
       "  datasource:",
       "    username: app",
       (f'    password: "{rand(ALNUM, 9)}&{rand(ALNUM, 6)}"', "HG-SECRET-101"),
       "    secret_name: my-app-db-credentials",
       "  security:",
       "    token_type: bearer_access_token_v2",
       "    client_secret: ${{ secrets.CLIENT_SECRET }}",
       (f"    jwt_signing_key: {rand(B64, 44)}", "HG-SECRET-102"),
       ),
    _f("srv/app/deploy.sh",
       "#!/bin/sh",
       (f'export API_TOKEN="{rand(ALNUM, 32)}"', "HG-SECRET-104"),
       'export SECRET_KEY_BASE_LENGTH=128',
       'curl -H "X-Api-Key: $API_KEY" https://api.fake.internal/v1',
       (f"git clone https://oauth2:glpat-{fake(URLSAFE, 20)}@gitlab.fake.internal/g/p.git",
        "HG-SECRET-020"),
       ),
    _f("srv/app/src/Main.java",
       'private static final String PASSWORD_FIELD = "passwordConfirmation";',
       'String apiKeyHeader = "X-Api-Key-Header-Name";',
       'String hash = "$2b$12$' + rand(ALNUM + "./", 53) + '";',
       (f'String mailgun = "key-{rand(HEX, 32)}";', "HG-SECRET-052"),
       ),
]

FILES: list[CorpusFile] = POSITIVE_FILES + NEGATIVE_FILES + HOLDOUT_FILES


def expected() -> set[tuple[str, int, str]]:
    return {(f.path, line, rule) for f in FILES for line, rule in f.expected()}


def write(root: Path) -> list[Path]:
    """Materialise the corpus under ``root`` (for tools that scan a directory)."""
    out = []
    for f in FILES:
        p = root / f.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f.text)
        out.append(p)
    return out
