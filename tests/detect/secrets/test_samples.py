"""One FAKE sample per rule the corpus does not cover, so that every rule is shown to fire
(with both backends) on the shape it was written for."""

from __future__ import annotations

import base64
import string

import pytest

from hullguard.detect.secrets.engine import Engine
from hullguard.detect.secrets.rules import RULES
from tests.detect.secrets.corpus import ALNUM, B64, HEX, URLSAFE, expected, fake, rand, uuid

LOWER_NUM = string.ascii_lowercase + string.digits
UPPER_NUM = string.ascii_uppercase + string.digits

SAMPLES: dict[str, tuple[str, str]] = {  # rule id -> (path, text)
    "HG-SECRET-003": ("a.env", f"AWS_SESSION_TOKEN={fake(B64, 300)}"),
    "HG-SECRET-004": ("a.env", f"MWS_TOKEN=amzn.mws.{uuid()}"),
    "HG-SECRET-008": ("a.json", f'"refresh_token": "1//0{fake(URLSAFE, 60)}"'),
    "HG-SECRET-009": ("a.json", f'"access_token": "ya29.{fake(URLSAFE, 120)}"'),
    "HG-SECRET-011": ("a.env", f"AZURE_STORAGE_KEY={rand(B64, 86)}=="),
    "HG-SECRET-025": ("a.env", f"CI_JOB=glcbt-{fake(URLSAFE, 30)}"),
    "HG-SECRET-026": ("a.env", f"MAIL=glimt-{fake(URLSAFE, 25)}"),
    "HG-SECRET-027": ("a.env", f"GL_OAUTH=gloas-{rand(URLSAFE, 64)}"),
    "HG-SECRET-028": ("a.env", f"FEED=glft-{fake(URLSAFE, 20)}"),
    "HG-SECRET-030": ("a.env", f"BITBUCKET_CLIENT_SECRET={rand(ALNUM, 64)}"),
    "HG-SECRET-032": ("a.env", f"JIRA_API_TOKEN={rand(ALNUM, 24)}"),
    "HG-SECRET-036": ("a.env", f"SLACK_CONFIG=xoxe.xoxp-1-{fake(ALNUM, 150)}"),
    "HG-SECRET-037": ("a.env", f"SLACK_LEGACY=xoxs-{rand(string.digits, 11)}-{fake(ALNUM, 30)}"),
    "HG-SECRET-044": ("a.env", f"SQUARE_SECRET=sq0csp-{fake(URLSAFE, 43)}"),
    "HG-SECRET-046": ("a.env", f"BRAINTREE_PRIVATE_KEY={rand(HEX, 32)}"),
    "HG-SECRET-047": ("a.env", f"FLW=FLWSECK_TEST-{rand('abcdef0123456789', 32)}-X"),
    "HG-SECRET-048": ("a.env", f"PLAID=access-sandbox-{uuid()}"),
    "HG-SECRET-054": ("a.env", f"BREVO=xkeysib-{rand(HEX, 64)}-{fake(ALNUM, 16)}"),
    "HG-SECRET-057": ("a.env",
                      f"DISCORD_BOT_TOKEN=M{rand(ALNUM, 23)}.{rand(URLSAFE, 6)}.{rand(URLSAFE, 27)}"),
    "HG-SECRET-058": ("a.env", f"TWITTER_BEARER={'A' * 22}{fake(ALNUM, 60)}"),
    "HG-SECRET-059": ("a.env", f"FB_TOKEN=EAAG{fake(ALNUM, 120)}"),
    "HG-SECRET-063": ("a.env", f"TEST_PYPI=pypi-AgENdGVzdC5weXBpLm9yZw{fake(URLSAFE, 70)}"),
    "HG-SECRET-067": ("root/.docker/config.json", f'{{"identitytoken": "{fake(URLSAFE, 40)}"}}'),
    "HG-SECRET-070": ("a.env", f"NUGET_KEY=oy2{rand(LOWER_NUM, 43)}"),
    "HG-SECRET-071": ("a.env", f"CLOJARS=CLOJARS_{rand(LOWER_NUM, 60)}"),
    "HG-SECRET-072": ("a.env", f"ARTIFACTORY=AKCp{fake(ALNUM, 69)}"),
    "HG-SECRET-075": ("root/.kube/config",
                      f"apiVersion: v1\nkind: Config\nusers:\n- name: x\n  user:\n"
                      f"    password: {rand(ALNUM, 16)}"),
    "HG-SECRET-083": ("k.ppk", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none"),
    "HG-SECRET-084": ("k.ssh2", f"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n{rand(B64, 64)}"),
    "HG-SECRET-089": ("a.http", f"Authorization: Basic {rand(B64, 28)}="),
    "HG-SECRET-098": ("root/.pgpass", f"db.fake.internal:5432:app:app:{rand(ALNUM, 18)}"),
    "HG-SECRET-106": ("a.env", f"VAULT_BATCH=hvb.{fake(URLSAFE, 140)}"),
    "HG-SECRET-107": ("a.env", f"VAULT_TOKEN=s.{fake(ALNUM, 24)}"),
    "HG-SECRET-112": ("a.env", f"DO_REFRESH=dor_v1_{rand(HEX, 64)}"),
    "HG-SECRET-114": ("a.env", f"HEROKU_API_KEY={uuid()}"),
    "HG-SECRET-116": ("a.env", f"ALIBABA_ACCESS_KEY_SECRET={rand(ALNUM, 30)}"),
    "HG-SECRET-118": ("a.env", f"TENCENTCLOUD_SECRET_KEY={rand(ALNUM, 32)}"),
    "HG-SECRET-119": ("a.env", f"CF_ORIGIN=v1.0-{rand(HEX, 24)}-{rand(HEX, 146)}"),
    "HG-SECRET-120": ("a.env", f"CLOUDFLARE_API_TOKEN={rand(URLSAFE, 40)}"),
    "HG-SECRET-121": ("a.env", f"YC_KEY=AQVN{fake(URLSAFE, 36)}"),
    "HG-SECRET-122": ("a.env", f"SCALINGO=tk-us-{fake(URLSAFE, 48)}"),
    "HG-SECRET-124": ("a.env", f"PSCALE=pscale_tkn_{fake(URLSAFE, 43)}"),
    "HG-SECRET-126": ("a.env", f"OP_SERVICE_ACCOUNT_TOKEN=ops_eyJ{fake(URLSAFE, 300)}"),
    "HG-SECRET-130": ("a.env", f"NR_INSERT=NRII-{fake(URLSAFE, 32)}"),
    "HG-SECRET-131": ("a.env", f"NEW_RELIC_LICENSE={rand(HEX, 36)}NRAL"),
    "HG-SECRET-135": ("a.env", f"GRAFANA_KEY=eyJrIjoi{fake(ALNUM, 80)}=="),
    "HG-SECRET-143": ("a.env", f"MAPBOX=sk.eyJ{fake(URLSAFE, 60)}.{rand(URLSAFE, 22)}"),
    "HG-SECRET-145": ("a.env", f"AIRTABLE=pat{fake(ALNUM, 14)}.{rand(HEX, 64)}"),
    "HG-SECRET-147": ("a.env", f"SRC_ACCESS_TOKEN=sgp_{rand(HEX, 16)}_{rand(HEX, 40)}"),
    "HG-SECRET-148": ("a.env", f"BUILDKITE=bkua_{rand(HEX, 40)}"),
    "HG-SECRET-149": ("a.env", f"CIRCLE=CCIPAT_{fake(ALNUM, 22)}_{rand(HEX, 40)}"),
    "HG-SECRET-150": ("a.env", f"CONTENTFUL=CFPAT-{fake(URLSAFE, 43)}"),
    "HG-SECRET-151": ("a.env", f"SHIPPO=shippo_live_{rand(HEX, 40)}"),
    "HG-SECRET-152": ("a.env", f"EASYPOST=EZAK{fake(ALNUM, 54)}"),
    "HG-SECRET-153": ("a.env", f"TYPEFORM=tfp_{fake(URLSAFE, 59)}"),
    "HG-SECRET-154": ("a.env", f"PREFECT_API_KEY=pnu_{fake(ALNUM, 36)}"),
    "HG-SECRET-155": ("a.env", f"README=rdme_{rand(LOWER_NUM, 70)}"),
    "HG-SECRET-156": ("a.env", f"DUFFEL=duffel_test_{fake(URLSAFE, 43)}"),
    "HG-SECRET-157": ("a.env", f"FRAMEIO=fio-u-{fake(URLSAFE, 64)}"),
    "HG-SECRET-158": ("a.env", f"INFRACOST=ico-{fake(ALNUM, 32)}"),
    "HG-SECRET-159": ("a.env",
                      f"HARNESS=pat.{fake(URLSAFE, 22)}.{rand(HEX, 24)}.{fake(ALNUM, 20)}"),
    "HG-SECRET-160": ("a.env", f"ADOBE=p8e-{fake(ALNUM, 32)}"),
    "HG-SECRET-161": ("a.env", f"ALGOLIA_ADMIN_KEY={rand(HEX, 32)}"),
    "HG-SECRET-162": ("a.env", f"SNYK_TOKEN={uuid()}"),
    "HG-SECRET-168": ("a.env", f"PPLX=pplx-{fake(ALNUM, 48)}"),
    "HG-SECRET-169": ("k8s/pull-secret.yaml",
                      "  .dockerconfigjson: " + base64.b64encode(
                          ('{"auths":{"registry.fake.internal":{"auth":"'
                           + base64.b64encode(f"ci:{rand(ALNUM, 20)}".encode()).decode() + '"}}}').encode()).decode()),
    "HG-SECRET-170": ("auth.json", f'"token": "packagist_uut_{rand(HEX, 68)}"'),
    "HG-SECRET-171": ("a.env", f"DT_API_TOKEN=dt0c01.{rand(UPPER_NUM, 24)}.{rand(UPPER_NUM, 64)}"),
}


def test_every_rule_has_a_sample_or_corpus_line() -> None:
    covered = {rule for _, _, rule in expected()} | set(SAMPLES)
    assert {r.id for r in RULES} <= covered


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_rule_fires_on_its_sample(engine: Engine, rule_id: str) -> None:
    path, text = SAMPLES[rule_id]
    found = [m.rule.id for m in engine.scan((text + "\n").encode(), path)]
    assert rule_id in found, (rule_id, found)


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_samples_identical_across_backends(hs_engine: Engine, re_engine: Engine, rule_id: str) -> None:
    path, text = SAMPLES[rule_id]
    data = (text + "\n").encode()
    key = [(m.rule.id, m.start, m.secret_end, m.line) for m in hs_engine.scan(data, path)]
    assert key == [(m.rule.id, m.start, m.secret_end, m.line) for m in re_engine.scan(data, path)]
