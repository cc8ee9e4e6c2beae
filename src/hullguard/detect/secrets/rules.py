"""Secret rules, as data.

Each rule is one regular expression over raw bytes plus the metadata that `hullguard rules
list/explain` shows. Ids are stable: a rule keeps its id forever, retired ids are never reused.

Conventions every pattern follows, because the engine relies on them:
- Every repetition is bounded (``{m,n}``, never ``+`` or ``*``) so that a hostile file with a
  multi-megabyte line cannot make Python's backtracking ``re`` go quadratic.
- Patterns are written in the common subset of Python ``re`` and Hyperscan syntax; the
  Hyperscan pass only preselects rules (prefilter mode) and ``re`` extracts the match, so both
  engines report the same findings.
- ``keywords`` are lowercase literals; a rule is only tried on a file that contains one of them
  (case-insensitively). They must be implied by the pattern, or the rule loses recall.
- ``group`` names the capture group holding the secret itself (0 = whole match); the rest of the
  match is context (``password=``) and is not masked or hashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hullguard.model import Severity

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW

# Token edges. A lookahead rather than \b because many tokens may end in '-' or '_'.
END = r"(?![A-Za-z0-9_\-])"
START = r"(?<![A-Za-z0-9_\-])"
# How a value follows its name in config files, env files, YAML, JSON and source code.
# Spaces and tabs only, never a newline: that keeps every match on one line (see line_local).
ASSIGN = r"""["']?[ \t]{0,4}(?:[:=]|:=|=>|[ \t])[ \t]{0,4}["']?"""
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    slug: str
    title: str
    severity: Severity
    regex: str
    keywords: tuple[str, ...]
    category: str
    group: int = 0
    # Minimum Shannon entropy (bits per character) of the secret; 0 disables the check.
    entropy: float = 0.0
    ignore_case: bool = False
    # Only files whose path matches one of these globs (fnmatch, '*' crosses '/') are tried.
    paths: tuple[str, ...] = ()
    # Reject values that look like templates or documentation (${VAR}, <password>, changeme).
    reject_placeholders: bool = False
    min_length: int = 0
    # True when no match can contain a newline. The hyperscan backend then confirms such a rule
    # with re on the lines where the prefilter fired instead of on the whole file, which gives
    # the same matches (a line-local regex finds the same spans on a line as in the file).
    line_local: bool = False
    description: str = ""
    remediation: str = ""
    references: tuple[str, ...] = field(default=())


_DESCRIBE = {
    "cloud": "{p} credentials let anyone who pulls the image act on the cloud account they "
    "belong to, with every permission granted to that identity.",
    "vcs": "{p} tokens give access to source repositories, CI settings and often package "
    "registries; a leaked token is a direct path into the supply chain.",
    "chat": "{p} credentials allow reading or posting messages as the integration, which is "
    "useful for phishing inside the organisation and for reading private channels.",
    "payment": "{p} keys can move money, issue refunds or read customer payment data.",
    "registry": "{p} credentials can publish packages or images; an attacker can push a "
    "poisoned release under your name.",
    "private-key": "A private key in the image lets anyone who can pull the image impersonate "
    "the key owner: decrypt traffic, sign artifacts or log in over SSH.",
    "database": "A connection string with an embedded password gives direct access to the "
    "database it names.",
    "generic": "A value assigned to a credential-like name looks random enough to be a real "
    "secret rather than a placeholder.",
    "saas": "{p} API credentials grant access to the account's data and settings.",
    "ai": "{p} API keys are billed per use and expose prompts, files and fine-tuned models.",
    "observability": "{p} keys can read telemetry (which often contains personal data) or "
    "inject misleading data and silence alerts.",
    "infra": "{p} tokens control infrastructure: secrets stores, deployments or DNS.",
    "config": "{p} stores credentials in clear text; anyone who can read the image can reuse "
    "them.",
    "token": "{p} bearer tokens authenticate whoever presents them until they expire.",
}
_REMEDIATE = (
    "Revoke or rotate this credential now (it is already exposed to anyone who pulled the "
    "image), then supply it at run time through a secret store, a mounted file or a build "
    "secret (`RUN --mount=type=secret`) instead of baking it into a layer. Deleting the file in "
    "a later layer does not remove it from the image."
)


def _r(
    n: int,
    slug: str,
    title: str,
    severity: Severity,
    regex: str,
    keywords: tuple[str, ...] | list[str],
    category: str,
    provider: str = "",
    *,
    group: int = 0,
    entropy: float = 0.0,
    ignore_case: bool = False,
    paths: tuple[str, ...] = (),
    placeholders: bool = False,
    min_length: int = 0,
    refs: tuple[str, ...] = (),
    line_local: bool | None = None,
) -> Rule:
    return Rule(
        id=f"HG-SECRET-{n:03d}",
        slug=slug,
        title=title,
        severity=severity,
        regex=regex,
        keywords=tuple(k.lower() for k in keywords),
        category=category,
        group=group,
        entropy=entropy,
        ignore_case=ignore_case,
        paths=paths,
        reject_placeholders=placeholders,
        min_length=min_length,
        line_local=category in ("generic", "database") if line_local is None else line_local,
        description=_DESCRIBE[category].format(p=provider or title),
        remediation=_REMEDIATE,
        references=refs,
    )


def _ctx(names: str, value: str) -> str:
    """A value introduced by one of ``names`` (an alternation) within a short distance, the
    shape of `DATADOG_API_KEY=...`, `"twilio_auth_token": "..."` or `--okta-token ...`."""
    return rf"(?:{names})[A-Za-z0-9_.\-]{{0,20}}{ASSIGN}({value}){END}"


_PEM_BODY = r"(?:\r?\n|(?:\\r)?\\n)(?:[A-Za-z0-9+/=]{16,80}|Proc-Type:|[A-Za-z\-]{1,30}:)"

RULES: tuple[Rule, ...] = (
    # --- AWS -----------------------------------------------------------------------------
    _r(1, "aws-access-key-id", "AWS access key ID", H,
       START + r"((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16})" + END,
       ("akia", "asia", "abia", "acca", "a3t"), "cloud", "AWS", group=1,
       refs=("https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html",)),
    _r(2, "aws-secret-access-key", "AWS secret access key", C,
       r"aws[_\-.]?(?:secret[_\-.]?(?:access[_\-.]?)?key|secret)" + ASSIGN
       + r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
       ("aws",), "cloud", "AWS", group=1, ignore_case=True, entropy=3.5,
       refs=("https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html",)),
    _r(3, "aws-session-token", "AWS session token", H,
       r"aws[_\-.]?session[_\-.]?token" + ASSIGN + r"([A-Za-z0-9/+=]{100,1200})",
       ("session",), "cloud", "AWS", group=1, ignore_case=True),
    _r(4, "aws-mws-key", "Amazon MWS auth token", H,
       r"\bamzn\.mws\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
       ("amzn.mws.",), "cloud", "Amazon MWS"),
    # --- Google Cloud --------------------------------------------------------------------
    _r(5, "gcp-service-account", "GCP service account key (JSON)", C,
       r""""private_key_id"\s{0,4}:\s{0,4}"([0-9a-f]{40})\"""",
       ("private_key_id",), "cloud", "Google Cloud service account", group=1,
       refs=("https://cloud.google.com/iam/docs/keys-create-delete",)),
    _r(6, "gcp-api-key", "Google API key", H, r"\bAIza[0-9A-Za-z_\-]{35}" + END,
       ("aiza",), "cloud", "Google API"),
    _r(7, "gcp-oauth-client-secret", "Google OAuth client secret", H,
       r"\bGOCSPX-[0-9A-Za-z_\-]{28}" + END, ("gocspx-",), "cloud", "Google OAuth"),
    _r(8, "google-oauth-refresh-token", "Google OAuth refresh token", H,
       START + r"1//0[A-Za-z0-9_\-]{40,400}", ("1//0",), "cloud", "Google OAuth"),
    _r(9, "google-oauth-access-token", "Google OAuth access token", M,
       r"\bya29\.[0-9A-Za-z_\-]{30,400}", ("ya29.",), "cloud", "Google OAuth"),
    # --- Azure ---------------------------------------------------------------------------
    _r(10, "azure-storage-connection-string", "Azure Storage connection string", C,
       r"DefaultEndpointsProtocol=https?;AccountName=[A-Za-z0-9]{3,24};AccountKey="
       r"([A-Za-z0-9+/]{86}==)", ("accountkey=",), "cloud", "Azure Storage", group=1,
       refs=("https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string",)),
    _r(11, "azure-storage-account-key", "Azure Storage account key", C,
       r"(?:account[_\-.]?key|storage[_\-.]?key|azure[_\-.]?storage[_\-.]?(?:account[_\-.]?)?key)"
       + ASSIGN + r"([A-Za-z0-9+/]{86}==)",
       ("key",), "cloud", "Azure Storage", group=1, ignore_case=True),
    _r(12, "azure-sas-token", "Azure shared access signature (SAS)", H,
       r"\bsv=\d{4}-\d{2}-\d{2}&[A-Za-z0-9%&=:.\-_]{0,300}?\bsig=([A-Za-z0-9%/+]{40,100})",
       ("sig=",), "cloud", "Azure SAS", group=1,
       refs=("https://learn.microsoft.com/azure/storage/common/storage-sas-overview",)),
    _r(13, "azure-ad-client-secret", "Azure AD (Entra ID) client secret", H,
       START + r"([A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})" + END,
       ("q~",), "cloud", "Azure AD", group=1),
    # --- GitHub --------------------------------------------------------------------------
    _r(14, "github-pat", "GitHub personal access token (classic)", C,
       r"\bghp_[A-Za-z0-9]{36}" + END, ("ghp_",), "vcs", "GitHub",
       refs=("https://docs.github.com/authentication/keeping-your-account-and-data-secure/about-authentication-to-github#githubs-token-formats",)),
    _r(15, "github-oauth", "GitHub OAuth access token", C, r"\bgho_[A-Za-z0-9]{36}" + END,
       ("gho_",), "vcs", "GitHub"),
    _r(16, "github-user-to-server", "GitHub App user-to-server token", C,
       r"\bghu_[A-Za-z0-9]{36}" + END, ("ghu_",), "vcs", "GitHub"),
    _r(17, "github-server-to-server", "GitHub App installation token", C,
       r"\bghs_[A-Za-z0-9]{36}" + END, ("ghs_",), "vcs", "GitHub"),
    _r(18, "github-refresh-token", "GitHub refresh token", C,
       r"\bghr_[A-Za-z0-9]{36,76}" + END, ("ghr_",), "vcs", "GitHub"),
    _r(19, "github-fine-grained-pat", "GitHub fine-grained personal access token", C,
       r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + END, ("github_pat_",), "vcs", "GitHub"),
    # --- GitLab --------------------------------------------------------------------------
    _r(20, "gitlab-pat", "GitLab personal access token", C,
       r"\bglpat-[A-Za-z0-9_\-]{20,80}" + END, ("glpat-",), "vcs", "GitLab",
       refs=("https://docs.gitlab.com/ee/security/tokens/",)),
    _r(21, "gitlab-deploy-token", "GitLab deploy token", H,
       r"\bgldt-[A-Za-z0-9_\-]{20,60}" + END, ("gldt-",), "vcs", "GitLab"),
    _r(22, "gitlab-runner-token", "GitLab runner authentication token", H,
       r"\bglrt-[A-Za-z0-9_\-]{20,60}" + END, ("glrt-",), "vcs", "GitLab"),
    _r(23, "gitlab-runner-registration", "GitLab runner registration token", H,
       r"\bGR1348941[A-Za-z0-9_\-]{20,60}" + END, ("gr1348941",), "vcs", "GitLab"),
    _r(24, "gitlab-pipeline-trigger", "GitLab pipeline trigger token", H,
       r"\bglptt-[0-9a-f]{40}" + END, ("glptt-",), "vcs", "GitLab"),
    _r(25, "gitlab-ci-job-token", "GitLab CI/CD job token", M,
       r"\bglcbt-[A-Za-z0-9_\-]{20,80}" + END, ("glcbt-",), "vcs", "GitLab"),
    _r(26, "gitlab-incoming-mail", "GitLab incoming mail token", M,
       r"\bglimt-[A-Za-z0-9_\-]{25,60}" + END, ("glimt-",), "vcs", "GitLab"),
    _r(27, "gitlab-oauth-secret", "GitLab OAuth application secret", H,
       r"\bgloas-[A-Za-z0-9_\-]{64}" + END, ("gloas-",), "vcs", "GitLab"),
    _r(28, "gitlab-feed-token", "GitLab feed / SCIM / agent token", M,
       r"\b(?:glft|glsoat|glagent|glffct)-[A-Za-z0-9_\-]{20,60}" + END,
       ("glft-", "glsoat-", "glagent-", "glffct-"), "vcs", "GitLab"),
    # --- Bitbucket / Atlassian -----------------------------------------------------------
    _r(29, "bitbucket-app-password", "Bitbucket app password", H,
       r"\bATBB[A-Za-z0-9_=.\-]{32}" + END, ("atbb",), "vcs", "Bitbucket"),
    _r(30, "bitbucket-client-secret", "Bitbucket OAuth client secret", H,
       _ctx("bitbucket", r"[A-Za-z0-9=_\-]{64}"), ("bitbucket",), "vcs", "Bitbucket",
       group=1, ignore_case=True),
    _r(31, "atlassian-api-token", "Atlassian API token", H,
       r"\bATATT3[A-Za-z0-9_\-=]{150,220}" + END, ("atatt3",), "saas", "Atlassian"),
    _r(32, "atlassian-legacy-token", "Atlassian / Jira / Confluence API token (legacy)", H,
       _ctx("atlassian|jira|confluence", r"[A-Za-z0-9]{24}"),
       ("atlassian", "jira", "confluence"), "saas", "Atlassian", group=1, ignore_case=True,
       entropy=3.5),
    # --- Slack ---------------------------------------------------------------------------
    _r(33, "slack-bot-token", "Slack bot token", H,
       r"\bxoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24}" + END, ("xoxb-",), "chat", "Slack",
       refs=("https://api.slack.com/authentication/token-types",)),
    _r(34, "slack-user-token", "Slack user token", H,
       r"\bxoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[a-f0-9]{32}" + END, ("xoxp-",),
       "chat", "Slack"),
    _r(35, "slack-app-token", "Slack app-level token", H,
       r"\bxapp-\d-[A-Z0-9]{9,12}-\d{10,14}-[a-f0-9]{64}" + END, ("xapp-",), "chat", "Slack"),
    _r(36, "slack-config-token", "Slack configuration token", H,
       r"\bxoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{146,170}" + END, ("xoxe",), "chat", "Slack"),
    _r(37, "slack-legacy-token", "Slack legacy / workspace token", M,
       r"\bxox[aors]-(?:\d{1,13}-){1,3}[A-Za-z0-9]{16,64}" + END,
       ("xoxa-", "xoxo-", "xoxr-", "xoxs-"), "chat", "Slack"),
    _r(38, "slack-webhook", "Slack incoming webhook URL", M,
       r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{8,12}/"
       r"[A-Z0-9]{8,12}/[A-Za-z0-9]{20,40}", ("hooks.slack.com",), "chat", "Slack"),
    # --- Payments ------------------------------------------------------------------------
    _r(39, "stripe-secret-key", "Stripe live secret key", C,
       r"\bsk_live_[0-9A-Za-z]{24,99}" + END, ("sk_live_",), "payment", "Stripe",
       refs=("https://docs.stripe.com/keys",)),
    _r(40, "stripe-restricted-key", "Stripe live restricted key", H,
       r"\brk_live_[0-9A-Za-z]{24,99}" + END, ("rk_live_",), "payment", "Stripe"),
    _r(41, "stripe-test-key", "Stripe test secret key", L,
       r"\b[sr]k_test_[0-9A-Za-z]{24,99}" + END, ("k_test_",), "payment", "Stripe"),
    _r(42, "stripe-webhook-secret", "Stripe webhook signing secret", M,
       r"\bwhsec_[A-Za-z0-9]{32,64}" + END, ("whsec_",), "payment", "Stripe"),
    _r(43, "square-access-token", "Square access token", C,
       r"\b(?:EAAA[A-Za-z0-9_\-]{60}|sq0atp-[A-Za-z0-9_\-]{22})" + END, ("eaaa", "sq0atp-"),
       "payment", "Square"),
    _r(44, "square-oauth-secret", "Square OAuth secret", C,
       r"\bsq0csp-[A-Za-z0-9_\-]{43}" + END, ("sq0csp-",), "payment", "Square"),
    _r(45, "paypal-braintree-token", "PayPal / Braintree access token", C,
       r"\baccess_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}" + END,
       ("access_token$",), "payment", "PayPal Braintree"),
    _r(46, "braintree-private-key", "Braintree private key", C,
       _ctx("braintree[_\\-.]?private[_\\-.]?key", r"[0-9a-f]{32}"), ("braintree",),
       "payment", "Braintree", group=1, ignore_case=True),
    _r(47, "flutterwave-secret-key", "Flutterwave secret key", C,
       r"\bFLWSECK(?:_TEST)?-[a-hA-H0-9]{32}-X" + END, ("flwseck",), "payment", "Flutterwave"),
    _r(48, "plaid-access-token", "Plaid access token", H,
       r"\baccess-(?:sandbox|development|production)-" + UUID + END,
       ("access-sandbox-", "access-development-", "access-production-"), "payment", "Plaid"),
    # --- Messaging / e-mail --------------------------------------------------------------
    _r(49, "twilio-api-key", "Twilio API key SID", M, r"\bSK[0-9a-fA-F]{32}" + END, ("sk",),
       "saas", "Twilio"),
    _r(50, "twilio-auth-token", "Twilio auth token", H,
       _ctx("twilio[_\\-.]?(?:auth[_\\-.]?)?(?:token|secret)", r"[0-9a-f]{32}"), ("twilio",),
       "saas", "Twilio", group=1, ignore_case=True),
    _r(51, "sendgrid-api-key", "SendGrid API key", H,
       r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + END, ("sg.",), "saas", "SendGrid",
       refs=("https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys",)),
    _r(52, "mailgun-api-key", "Mailgun private API key", H,
       r"\bkey-[0-9a-f]{32}" + END, ("key-",), "saas", "Mailgun"),
    _r(53, "mailchimp-api-key", "Mailchimp API key", H,
       r"\b[0-9a-f]{32}-us[0-9]{1,2}" + END, ("-us",), "saas", "Mailchimp"),
    _r(54, "brevo-api-key", "Brevo (Sendinblue) API key", H,
       r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}" + END, ("xkeysib-",), "saas", "Brevo"),
    _r(55, "telegram-bot-token", "Telegram bot token", H,
       r"\b[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}" + END, (":aa",), "chat", "Telegram"),
    _r(56, "discord-webhook", "Discord webhook URL", M,
       r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/"
       r"[A-Za-z0-9_\-]{60,68}", ("discord",), "chat", "Discord"),
    _r(57, "discord-bot-token", "Discord bot token", H,
       _ctx("discord", r"[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}"),
       ("discord",), "chat", "Discord", group=1, ignore_case=True),
    _r(58, "twitter-bearer-token", "Twitter / X bearer token", M,
       r"\bAAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,120}" + END, ("aaaaaaaaaaaaaaaaaaaaa",),
       "saas", "Twitter"),
    _r(59, "facebook-access-token", "Facebook / Meta access token", H,
       r"\bEAA(?:C|G|B|I)[A-Za-z0-9]{80,250}" + END, ("eaac", "eaag", "eaab", "eaai"),
       "saas", "Meta"),
    # --- Package registries --------------------------------------------------------------
    _r(60, "npm-token", "npm access token", C, r"\bnpm_[A-Za-z0-9]{36}" + END, ("npm_",),
       "registry", "npm", refs=("https://docs.npmjs.com/about-access-tokens",)),
    _r(61, "npmrc-auth-token", ".npmrc registry auth token", H,
       r"(?:_authToken|_auth|_password)\s{0,4}=\s{0,4}[\"']?([^\s\"'$]{8,512})",
       ("_auth", "_password"), "config", ".npmrc", group=1, placeholders=True,
       paths=("*.npmrc", "*npmrc"),
       refs=("https://docs.npmjs.com/cli/configuring-npm/npmrc",)),
    _r(62, "pypi-token", "PyPI upload token", C,
       r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,300}" + END, ("pypi-ageicHlwas5vcmc",),
       "registry", "PyPI", refs=("https://pypi.org/help/#apitoken",)),
    _r(63, "pypi-test-token", "TestPyPI upload token", M,
       r"\bpypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9_\-]{50,300}" + END,
       ("pypi-agendgvzdc5wexbplm9yzw",), "registry", "TestPyPI"),
    _r(64, "pypirc-password", ".pypirc password", H,
       r"^[ \t]{0,8}password[ \t]{0,4}[:=][ \t]{0,4}([^\s$]{4,256})",
       ("password",), "config", ".pypirc", group=1, placeholders=True,
       paths=("*.pypirc", "*pypirc")),
    _r(65, "netrc-password", ".netrc password", H,
       r"\bpassword[ \t]{1,8}([^\s]{3,256})", ("password",), "config", ".netrc", group=1,
       placeholders=True, paths=("*.netrc", "*netrc", "*_netrc")),
    _r(66, "docker-config-auth", "Docker config.json registry auth", H,
       r""""auth"\s{0,4}:\s{0,4}"([A-Za-z0-9+/]{8,1024}={0,2})\"""", ("auths",), "config",
       "Docker config.json", group=1,
       refs=("https://docs.docker.com/reference/cli/docker/login/",)),
    _r(67, "docker-config-identity-token", "Docker config.json identity token", H,
       r""""identitytoken"\s{0,4}:\s{0,4}"([^"\s]{16,4096})\"""", ("identitytoken",),
       "config", "Docker config.json", group=1),
    _r(68, "dockerhub-pat", "Docker Hub access token", H,
       r"\bdckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,40}" + END, ("dckr_",), "registry", "Docker Hub"),
    _r(69, "rubygems-api-key", "RubyGems API key", H, r"\brubygems_[a-f0-9]{48}" + END,
       ("rubygems_",), "registry", "RubyGems"),
    _r(70, "nuget-api-key", "NuGet API key", H, r"\boy2[a-z0-9]{43}" + END, ("oy2",),
       "registry", "NuGet"),
    _r(71, "clojars-token", "Clojars deploy token", H, r"\bCLOJARS_[a-z0-9]{60}" + END,
       ("clojars_",), "registry", "Clojars"),
    _r(72, "artifactory-token", "JFrog Artifactory API key / reference token", H,
       r"\b(?:AKCp[A-Za-z0-9]{69}|cmVmdGtuOjAxOj[A-Za-z0-9]{40,80})" + END,
       ("akcp", "cmvmdgtuojaxoj"), "registry", "JFrog Artifactory"),
    # --- Kubernetes ----------------------------------------------------------------------
    _r(73, "kubeconfig-token", "kubeconfig user token", C,
       r"^[ \t]{2,16}token:[ \t]{0,4}[\"']?([A-Za-z0-9._~+/\-]{20,4096}={0,2})",
       ("kind: config",), "config", "kubeconfig", group=1,
       refs=("https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/",)),
    _r(74, "kubeconfig-client-key", "kubeconfig client key data", C,
       r"client-key-data:[ \t]{0,4}[\"']?([A-Za-z0-9+/]{40,16384}={0,2})", ("client-key-data",),
       "config", "kubeconfig", group=1),
    _r(75, "kubeconfig-password", "kubeconfig basic-auth password", H,
       r"^[ \t]{2,16}password:[ \t]{0,4}[\"']?([^\s\"']{4,256})", ("kind: config",), "config",
       "kubeconfig", group=1, placeholders=True),
    # --- Private keys --------------------------------------------------------------------
    _r(76, "private-key-rsa", "RSA private key", C,
       r"-----BEGIN RSA PRIVATE KEY-----(" + _PEM_BODY + ")", ("begin rsa private key",),
       "private-key", group=1),
    _r(77, "private-key-ec", "EC private key", C,
       r"-----BEGIN EC PRIVATE KEY-----(" + _PEM_BODY + ")", ("begin ec private key",),
       "private-key", group=1),
    _r(78, "private-key-dsa", "DSA private key", C,
       r"-----BEGIN DSA PRIVATE KEY-----(" + _PEM_BODY + ")", ("begin dsa private key",),
       "private-key", group=1),
    _r(79, "private-key-openssh", "OpenSSH private key", C,
       r"-----BEGIN OPENSSH PRIVATE KEY-----(" + _PEM_BODY + ")",
       ("begin openssh private key",), "private-key", group=1),
    _r(80, "private-key-pgp", "PGP private key block", C,
       r"-----BEGIN PGP PRIVATE KEY BLOCK-----((?:\r?\n|(?:\\r)?\\n)(?:[A-Za-z]{1,20}:|\r?\n|\\n"
       r"|[A-Za-z0-9+/=]{16,80}))", ("begin pgp private key block",), "private-key", group=1),
    _r(81, "private-key-pkcs8", "PKCS#8 private key", C,
       r"-----BEGIN PRIVATE KEY-----(" + _PEM_BODY + ")", ("begin private key",),
       "private-key", group=1),
    _r(82, "private-key-pkcs8-encrypted", "Encrypted PKCS#8 private key", M,
       r"-----BEGIN ENCRYPTED PRIVATE KEY-----(" + _PEM_BODY + ")",
       ("begin encrypted private key",), "private-key", group=1),
    _r(83, "private-key-putty", "PuTTY private key", C,
       r"PuTTY-User-Key-File-[23]: ([a-z0-9\-]{7,40})", ("putty-user-key-file",),
       "private-key", group=1),
    _r(84, "private-key-ssh2-encrypted", "SSH2 (ssh.com) encrypted private key", M,
       r"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----(" + _PEM_BODY + ")",
       ("begin ssh2 encrypted private key",), "private-key", group=1),
    _r(85, "age-secret-key", "age secret key", C,
       r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}" + END,
       ("age-secret-key-1",), "private-key", refs=("https://age-encryption.org/v1",)),
    _r(86, "wireguard-private-key", "WireGuard private key", C,
       r"^[ \t]{0,8}PrivateKey[ \t]{0,4}=[ \t]{0,4}([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)",
       ("privatekey",), "private-key", group=1),
    # --- Tokens --------------------------------------------------------------------------
    _r(87, "jwt", "JSON Web Token", M,
       r"\beyJ[A-Za-z0-9_\-]{10,2000}\.eyJ[A-Za-z0-9_\-]{10,8000}\.[A-Za-z0-9_\-]{10,2000}"
       + END, ("eyj",), "token", "JWT", refs=("https://datatracker.ietf.org/doc/html/rfc7519",)),
    _r(88, "authorization-bearer", "Authorization: Bearer header with a token", M,
       r"authorization[\"']?\s{0,4}[:=]\s{0,4}[\"']?bearer\s{1,4}([A-Za-z0-9._~+/\-]{20,2048}={0,2})",
       ("bearer",), "token", "HTTP", group=1, ignore_case=True, entropy=3.5,
       placeholders=True),
    _r(89, "authorization-basic", "Authorization: Basic header with credentials", M,
       r"authorization[\"']?\s{0,4}[:=]\s{0,4}[\"']?basic\s{1,4}([A-Za-z0-9+/]{12,1024}={0,2})"
       + r"(?![A-Za-z0-9+/=])",
       ("basic",), "token", "HTTP", group=1, ignore_case=True, entropy=3.0,
       placeholders=True),
    # --- Database and service URLs -------------------------------------------------------
    _r(90, "postgres-url", "PostgreSQL URL with a password", H,
       r"\bpostgres(?:ql)?(?:\+[a-z0-9]{1,16})?://[^:@/\s\"'`]{1,128}:([^@/\s\"'`]{3,128})@[^\s\"'`]{1,256}",
       ("postgres",), "database", group=1, placeholders=True),
    _r(91, "mysql-url", "MySQL / MariaDB URL with a password", H,
       r"\b(?:mysql|mariadb)(?:\+[a-z0-9]{1,16})?://[^:@/\s\"'`]{1,128}:([^@/\s\"'`]{3,128})@[^\s\"'`]{1,256}",
       ("mysql", "mariadb"), "database", group=1, placeholders=True),
    _r(92, "mongodb-url", "MongoDB URL with a password", H,
       r"\bmongodb(?:\+srv)?://[^:@/\s\"'`]{1,128}:([^@/\s\"'`]{3,128})@[^\s\"'`]{1,256}",
       ("mongodb",), "database", group=1, placeholders=True),
    _r(93, "redis-url", "Redis URL with a password", H,
       r"\bredis(?:s|\+sentinel)?://[^:@/\s\"'`]{0,128}:([^@/\s\"'`]{3,128})@[^\s\"'`]{1,256}",
       ("redis",), "database", group=1, placeholders=True),
    _r(94, "amqp-url", "AMQP (RabbitMQ) URL with a password", H,
       r"\bamqps?://[^:@/\s\"'`]{1,128}:([^@/\s\"'`]{3,128})@[^\s\"'`]{1,256}",
       ("amqp",), "database", group=1, placeholders=True),
    _r(95, "mssql-connection-string", "SQL Server connection string with a password", H,
       r"\b(?:Server|Data Source)=[^;\"'\n]{1,256};[^\"'\n]{0,256}?(?:Password|Pwd)=([^;\"'\s]{3,128})",
       ("password=", "pwd="), "database", group=1, ignore_case=True, placeholders=True),
    _r(96, "jdbc-url-password", "JDBC URL with a password parameter", H,
       r"\bjdbc:[a-z0-9]{2,20}:[^\s\"'`]{1,256}?[?&;]password=([^&;\s\"'`]{3,128})",
       ("jdbc:",), "database", group=1, ignore_case=True, placeholders=True),
    _r(97, "url-basic-auth", "URL with embedded credentials", M,
       r"\b(?:https?|ftp|ftps|sftp|smtp|smtps|ldap|ldaps|git\+https)://[^:@/\s\"'`]{1,128}:"
       r"([^@/\s\"'`]{3,128})@[A-Za-z0-9.\-]{1,253}",
       ("://",), "database", group=1, placeholders=True, entropy=2.5),
    _r(98, "pgpass-entry", ".pgpass password", H,
       r"^[^:\n]{1,255}:(?:\d{1,5}|\*):[^:\n]{1,255}:[^:\n]{1,255}:([^\n]{3,255})",
       (":",), "config", ".pgpass", group=1, placeholders=True, paths=("*.pgpass", "*pgpass")),
    _r(99, "shadow-password-hash", "Password hash in a shadow file", M,
       r"^[a-z_][a-z0-9_\-]{0,31}\$?:(\$(?:1|2[abxy]|5|6|y|gy|7)\$[^:\n]{8,200}):",
       ("$",), "config", "/etc/shadow", group=1, paths=("etc/shadow", "*/etc/shadow",
                                                           "etc/gshadow", "*/etc/gshadow")),
    _r(100, "xml-password-element", "Password element in an XML configuration", M,
        r"<(?:password|passphrase|secret)>([^<\s$]{4,256})</(?:password|passphrase|secret)>",
        ("<password>", "<passphrase>", "<secret>"), "config", "XML configuration (Maven, NuGet)",
        group=1, ignore_case=True, placeholders=True, entropy=2.5),
    # --- Generic assignments (entropy-gated) ---------------------------------------------
    _r(101, "generic-password", "Password assignment", M,
       r"(?:password|passwd|passphrase|pwd|requirepass)[A-Za-z0-9_]{0,20}"
       r"[\"']?[ \t]{0,4}(?:=|:|:=|=>)[ \t]{0,4}[\"']?([A-Za-z0-9_\-+/=.!@#%^&*~?|]{8,128})"
       r"(?=[\"'\s;,]|$)",
       ("pass", "pwd"), "generic", group=1, ignore_case=True, entropy=3.0, placeholders=True),
    _r(102, "generic-secret", "Secret assignment", M,
       r"(?:secret|private[_\-]?key|signing[_\-]?key|encryption[_\-]?key)[A-Za-z0-9_]{0,20}"
       r"[\"']?[ \t]{0,4}(?:=|:|:=|=>)[ \t]{0,4}[\"']?([A-Za-z0-9_\-+/=.!@#%^&*~]{16,256})"
       r"(?=[\"'\s;,]|$)",
       ("secret", "key"), "generic", group=1, ignore_case=True, entropy=3.5, placeholders=True),
    _r(103, "generic-api-key", "API key assignment", M,
       r"(?:api[_\-.]?key|apikey|access[_\-.]?key|app[_\-.]?key)[A-Za-z0-9_]{0,20}"
       r"[\"']?[ \t]{0,4}(?:=|:|:=|=>)[ \t]{0,4}[\"']?([A-Za-z0-9_\-+/=.]{16,256})"
       r"(?=[\"'\s;,]|$)",
       ("key",), "generic", group=1, ignore_case=True, entropy=3.5, placeholders=True),
    _r(104, "generic-token", "Token assignment", M,
       r"(?:token|auth[_\-.]?key|bearer)[A-Za-z0-9_]{0,20}"
       r"[\"']?[ \t]{0,4}(?:=|:|:=|=>)[ \t]{0,4}[\"']?([A-Za-z0-9_\-+/=.]{16,256})"
       r"(?=[\"'\s;,]|$)",
       ("token", "auth", "bearer"), "generic", group=1, ignore_case=True, entropy=3.5,
       placeholders=True),
    # --- Infrastructure ------------------------------------------------------------------
    _r(105, "vault-service-token", "HashiCorp Vault service token", C,
       r"\bhvs\.[A-Za-z0-9_\-]{90,200}" + END, ("hvs.",), "infra", "HashiCorp Vault",
       refs=("https://developer.hashicorp.com/vault/docs/concepts/tokens",)),
    _r(106, "vault-batch-token", "HashiCorp Vault batch token", H,
       r"\bhvb\.[A-Za-z0-9_\-]{100,300}" + END, ("hvb.",), "infra", "HashiCorp Vault"),
    _r(107, "vault-legacy-token", "HashiCorp Vault token (legacy format)", H,
       _ctx("vault[_\\-.]?token", r"s\.[A-Za-z0-9]{24}"), ("vault",), "infra",
       "HashiCorp Vault", group=1, ignore_case=True),
    _r(108, "terraform-cloud-token", "Terraform Cloud / Enterprise API token", C,
       r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}" + END, (".atlasv1.",), "infra",
       "Terraform Cloud"),
    _r(109, "pulumi-token", "Pulumi access token", H, r"\bpul-[a-f0-9]{40}" + END, ("pul-",),
       "infra", "Pulumi"),
    _r(110, "doppler-token", "Doppler token", H,
       r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9_\-]{40,44}" + END, ("dp.",), "infra",
       "Doppler"),
    _r(111, "digitalocean-pat", "DigitalOcean personal access token", C,
       r"\bdop_v1_[a-f0-9]{64}" + END, ("dop_v1_",), "cloud", "DigitalOcean"),
    _r(112, "digitalocean-oauth", "DigitalOcean OAuth / refresh token", H,
       r"\bdo[or]_v1_[a-f0-9]{64}" + END, ("doo_v1_", "dor_v1_"), "cloud", "DigitalOcean"),
    _r(113, "heroku-api-key", "Heroku API key", H,
       r"\bHRKU-(?:AA)?[A-Za-z0-9_\-]{58,60}" + END, ("hrku-",), "cloud", "Heroku"),
    _r(114, "heroku-legacy-key", "Heroku API key (UUID format)", H,
       _ctx("heroku", UUID), ("heroku",), "cloud", "Heroku", group=1, ignore_case=True),
    _r(115, "alibaba-access-key-id", "Alibaba Cloud AccessKey ID", H,
       r"\bLTAI[A-Za-z0-9]{12,20}" + END, ("ltai",), "cloud", "Alibaba Cloud"),
    _r(116, "alibaba-access-key-secret", "Alibaba Cloud AccessKey secret", C,
       _ctx("(?:alibaba|aliyun|alicloud)[_\\-.]?(?:access[_\\-.]?)?(?:key[_\\-.]?)?secret",
            r"[A-Za-z0-9]{30}"),
       ("alibaba", "aliyun", "alicloud"), "cloud", "Alibaba Cloud", group=1, ignore_case=True),
    _r(117, "tencent-secret-id", "Tencent Cloud SecretId", H, r"\bAKID[A-Za-z0-9]{32}" + END,
       ("akid",), "cloud", "Tencent Cloud"),
    _r(118, "tencent-secret-key", "Tencent Cloud SecretKey", C,
       _ctx("(?:tencent|tencentcloud|qcloud)[_\\-.]?secret[_\\-.]?key", r"[A-Za-z0-9]{32}"),
       ("tencent", "qcloud"), "cloud", "Tencent Cloud", group=1, ignore_case=True),
    _r(119, "cloudflare-origin-ca-key", "Cloudflare Origin CA key", H,
       r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}" + END, ("v1.0-",), "infra", "Cloudflare"),
    _r(120, "cloudflare-api-token", "Cloudflare API token", H,
       _ctx("cloudflare|cf[_\\-]api", r"[A-Za-z0-9_\-]{40}"), ("cloudflare", "cf_api", "cf-api"),
       "infra", "Cloudflare", group=1, ignore_case=True, entropy=3.5),
    _r(121, "yandex-token", "Yandex Cloud IAM / API key", H,
       r"\b(?:AQVN[A-Za-z0-9_\-]{35,38}|t1\.[A-Z0-9a-z_\-]{80,400}={0,2}|y[0-3]_[A-Za-z0-9_\-]{55})"
       + END, ("aqvn", "t1.", "y0_", "y1_", "y2_", "y3_"), "cloud", "Yandex Cloud"),
    _r(122, "scalingo-token", "Scalingo API token", H, r"\btk-us-[A-Za-z0-9_\-]{48}" + END,
       ("tk-us-",), "cloud", "Scalingo"),
    _r(123, "databricks-token", "Databricks access token", H,
       r"\bdapi[a-f0-9]{32}(?:-\d)?" + END, ("dapi",), "infra", "Databricks"),
    _r(124, "planetscale-token", "PlanetScale token or password", H,
       r"\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-.=]{32,64}" + END, ("pscale_",), "infra",
       "PlanetScale"),
    _r(125, "supabase-token", "Supabase personal access token", H,
       r"\bsbp_[a-f0-9]{40}" + END, ("sbp_",), "infra", "Supabase"),
    _r(126, "onepassword-token", "1Password service account token", C,
       r"\bops_eyJ[A-Za-z0-9+/=_\-]{250,2000}" + END, ("ops_eyj",), "infra", "1Password"),
    # --- Observability -------------------------------------------------------------------
    _r(127, "datadog-api-key", "Datadog API key", H,
       _ctx("(?:datadog|dd)[_\\-.]?api[_\\-.]?key", r"[a-f0-9]{32}"), ("datadog", "dd_", "dd-"),
       "observability", "Datadog", group=1, ignore_case=True),
    _r(128, "datadog-app-key", "Datadog application key", H,
       _ctx("(?:datadog|dd)[_\\-.]?app(?:lication)?[_\\-.]?key", r"[a-f0-9]{40}"),
       ("datadog", "dd_", "dd-"), "observability", "Datadog", group=1, ignore_case=True),
    _r(129, "newrelic-user-key", "New Relic user API key", H,
       r"\bNRAK-[A-Z0-9]{27}" + END, ("nrak-",), "observability", "New Relic"),
    _r(130, "newrelic-insert-key", "New Relic insert / browser key", M,
       r"\b(?:NRII-[A-Za-z0-9_\-]{32}|NRJS-[a-f0-9]{19})" + END, ("nrii-", "nrjs-"),
       "observability", "New Relic"),
    _r(131, "newrelic-license-key", "New Relic license key", H,
       r"\b[a-f0-9]{36}NRAL" + END, ("nral",), "observability", "New Relic"),
    _r(132, "sentry-auth-token", "Sentry auth token", H,
       r"\b(?:sntrys_eyJ[A-Za-z0-9+/=_\-]{60,400}|sntryu_[a-f0-9]{64})" + END,
       ("sntrys_", "sntryu_"), "observability", "Sentry"),
    _r(133, "grafana-cloud-token", "Grafana Cloud access policy token", H,
       r"\bglc_[A-Za-z0-9+/]{32,400}={0,2}", ("glc_",), "observability", "Grafana"),
    _r(134, "grafana-service-account", "Grafana service account token", H,
       r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}" + END, ("glsa_",), "observability", "Grafana"),
    _r(135, "grafana-api-key", "Grafana API key (legacy)", M,
       r"\beyJrIjoi[A-Za-z0-9+/]{60,100}={0,2}", ("eyjrijoi",), "observability", "Grafana"),
    _r(136, "okta-api-token", "Okta API token", H,
       _ctx("okta", r"00[A-Za-z0-9_\-]{40}"), ("okta",), "saas", "Okta", group=1,
       ignore_case=True),
    # --- SaaS and developer tools --------------------------------------------------------
    _r(137, "shopify-access-token", "Shopify access token", H,
       r"\bshp(?:at|ca|pa)_[a-fA-F0-9]{32}" + END, ("shpat_", "shpca_", "shppa_"), "saas",
       "Shopify"),
    _r(138, "shopify-shared-secret", "Shopify shared secret", H,
       r"\bshpss_[a-fA-F0-9]{32}" + END, ("shpss_",), "saas", "Shopify"),
    _r(139, "linear-api-key", "Linear API key", H,
       r"\blin_(?:api_[A-Za-z0-9]{40}|oauth_[a-f0-9]{64})" + END, ("lin_api_", "lin_oauth_"),
       "saas", "Linear"),
    _r(140, "figma-token", "Figma personal access token", M,
       r"\bfigd_[A-Za-z0-9_\-]{40}" + END, ("figd_",), "saas", "Figma"),
    _r(141, "dropbox-token", "Dropbox access token", H,
       r"\b(?:sl\.[A-Za-z0-9_\-]{130,160}|[a-z0-9]{11}AAAAAAAAAA[A-Za-z0-9_\-]{43})" + END,
       ("sl.", "aaaaaaaaaa"), "saas", "Dropbox"),
    _r(142, "postman-api-key", "Postman API key", H,
       r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}" + END, ("pmak-",), "saas", "Postman"),
    _r(143, "mapbox-secret-token", "Mapbox secret token", H,
       r"\bsk\.eyJ[A-Za-z0-9_\-]{20,400}\.[A-Za-z0-9_\-]{22,200}" + END, ("sk.eyj",), "saas",
       "Mapbox"),
    _r(144, "notion-token", "Notion integration token", H,
       r"\b(?:secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35})" + END,
       ("secret_", "ntn_"), "saas", "Notion"),
    _r(145, "airtable-pat", "Airtable personal access token", H,
       r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}" + END, ("pat",), "saas", "Airtable"),
    _r(146, "sonarqube-token", "SonarQube / SonarCloud token", M,
       r"\bsq[pua]_[a-f0-9]{40}" + END, ("sqp_", "squ_", "sqa_"), "vcs", "SonarQube"),
    _r(147, "sourcegraph-token", "Sourcegraph access token", M,
       r"\bsgp_(?:[a-f0-9]{16}_)?[a-f0-9]{40}" + END, ("sgp_",), "vcs", "Sourcegraph"),
    _r(148, "buildkite-token", "Buildkite agent / API token", H,
       r"\bbkua_[a-f0-9]{40}" + END, ("bkua_",), "vcs", "Buildkite"),
    _r(149, "circleci-token", "CircleCI personal API token", H,
       r"\bCCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}" + END, ("ccipat_",), "vcs", "CircleCI"),
    _r(150, "contentful-token", "Contentful personal access token", M,
       r"\bCFPAT-[A-Za-z0-9_\-]{43}" + END, ("cfpat-",), "saas", "Contentful"),
    _r(151, "shippo-token", "Shippo live API token", H,
       r"\bshippo_live_[a-f0-9]{40}" + END, ("shippo_live_",), "saas", "Shippo"),
    _r(152, "easypost-key", "EasyPost API key", H, r"\bEZ[AT]K[A-Za-z0-9]{54}" + END,
       ("ezak", "eztk"), "saas", "EasyPost"),
    _r(153, "typeform-token", "Typeform personal access token", M,
       r"\btfp_[A-Za-z0-9_\-.=]{59}" + END, ("tfp_",), "saas", "Typeform"),
    _r(154, "prefect-token", "Prefect API key", H, r"\bpnu_[A-Za-z0-9]{36}" + END, ("pnu_",),
       "infra", "Prefect"),
    _r(155, "readme-key", "ReadMe API key", M, r"\brdme_[a-z0-9]{70}" + END, ("rdme_",),
       "saas", "ReadMe"),
    _r(156, "duffel-token", "Duffel API token", H,
       r"\bduffel_(?:test|live)_[A-Za-z0-9_\-=]{43}" + END, ("duffel_",), "saas", "Duffel"),
    _r(157, "frameio-token", "Frame.io API token", M, r"\bfio-u-[A-Za-z0-9_\-=]{64}" + END,
       ("fio-u-",), "saas", "Frame.io"),
    _r(158, "infracost-key", "Infracost API key", M, r"\bico-[A-Za-z0-9]{32}" + END,
       ("ico-",), "infra", "Infracost"),
    _r(159, "harness-pat", "Harness access token", H,
       r"\bpat\.[A-Za-z0-9_\-]{22}\.[a-f0-9]{24}\.[A-Za-z0-9]{20}" + END, ("pat.",), "infra",
       "Harness"),
    _r(160, "adobe-client-secret", "Adobe client secret", H, r"\bp8e-[A-Za-z0-9]{32}" + END,
       ("p8e-",), "saas", "Adobe"),
    _r(161, "algolia-admin-key", "Algolia admin API key", H,
       _ctx("algolia[_\\-.]?(?:admin[_\\-.]?)?(?:api[_\\-.]?)?key", r"[a-f0-9]{32}"),
       ("algolia",), "saas", "Algolia", group=1, ignore_case=True),
    _r(162, "snyk-token", "Snyk API token", H, _ctx("snyk[_\\-.]?(?:api[_\\-.]?)?token", UUID),
       ("snyk",), "vcs", "Snyk", group=1, ignore_case=True),
    # --- AI providers --------------------------------------------------------------------
    _r(163, "openai-api-key", "OpenAI API key", H,
       r"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,200}|[A-Za-z0-9]{20})T3BlbkFJ"
       r"[A-Za-z0-9_\-]{20,200}" + END, ("t3blbkfj",), "ai", "OpenAI"),
    _r(164, "anthropic-api-key", "Anthropic API key", H,
       r"\bsk-ant-(?:api03|admin01)-[A-Za-z0-9_\-]{80,100}AA" + END, ("sk-ant-",), "ai",
       "Anthropic"),
    _r(165, "huggingface-token", "Hugging Face access token", H,
       r"\b(?:hf_[A-Za-z]{34}|api_org_[A-Za-z]{34})" + END, ("hf_", "api_org_"), "ai",
       "Hugging Face"),
    _r(166, "replicate-token", "Replicate API token", H, r"\br8_[A-Za-z0-9]{37}" + END,
       ("r8_",), "ai", "Replicate"),
    _r(167, "groq-api-key", "Groq API key", H, r"\bgsk_[A-Za-z0-9]{52}" + END, ("gsk_",),
       "ai", "Groq"),
    _r(168, "perplexity-api-key", "Perplexity API key", H, r"\bpplx-[A-Za-z0-9]{48}" + END,
       ("pplx-",), "ai", "Perplexity"),
    # --- found missing by comparing with trivy's built-in rules (bench/secrets.py) ---------
    # An image pull Secret carries a whole Docker config.json, base64-encoded: `{"` is `eyJ`.
    _r(169, "kubernetes-dockerconfigjson", "Docker registry credentials in a Kubernetes Secret", H,
       r"""["']?\.docker(?:configjson|cfg)["']?[ \t]{0,4}:[ \t]{0,4}["']?((?:ey|ew)[A-Za-z0-9+/]{20,16384}={0,2})""",
       (".dockerc",), "config", "A Kubernetes image pull Secret (.dockerconfigjson)", group=1,
       refs=("https://kubernetes.io/docs/concepts/configuration/secret/#docker-config-secrets",)),
    _r(170, "private-packagist-token", "Private Packagist token", H,
       r"\bpackagist_[ou][ru]t_[a-f0-9]{68}" + END, ("packagist_",), "registry", "Private Packagist",
       refs=("https://packagist.com/docs/composer-authentication#token-format",)),
    _r(171, "dynatrace-api-token", "Dynatrace API token", H,
       r"\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}" + END, ("dt0c01.",), "observability", "Dynatrace"),
)

_BY_ID = {rule.id: rule for rule in RULES}


def rule_by_id(rule_id: str) -> Rule | None:
    return _BY_ID.get(rule_id)


def _check_ids() -> None:
    # Ids are the contract with users' allow-lists: duplicates would be a silent bug.
    if len(_BY_ID) != len(RULES):
        raise RuntimeError("duplicate secret rule id")


_check_ids()


def catalog() -> list:
    """The secret rules in the shape `hullguard rules list/explain` shows (the misconfiguration
    rule struct), so the CLI can list both kinds from one registry."""
    from hullguard.detect.misconfig.rules import Rule as CatalogRule

    return [
        CatalogRule(id=r.id, title=r.title, severity=r.severity, description=r.description,
                    remediation=r.remediation, references=r.references)
        for r in RULES
    ]
