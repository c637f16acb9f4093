"""Secrets: references in desired state, their resolution, rendering, detection, redaction.

The layer's public surface; callers import from here (``from reconciler.secrets import X``).
Each concern is one module, each importing only the ones above it in this list:

- ``references``: the one reference grammar (``${env:NAME}``, ``${NAME}``, ``${file:PATH}``,
  ``${resolver:NAME}``, ``<GET_FROM_INFISICAL:NAME>``), its canonical spelling, and the
  strings of an essence a reference can sit in. No I/O.
- ``redaction``: the ``Redactor`` that shows every known secret value as ``‹secret:4f1c2a›``,
  the process-wide ``REDACTOR`` for logs and the standard streams, and their wrappers.
- ``detection``: literal secrets by shape and by randomness under secret-like keys, and
  which env and header values are masked (``is_secret_value``).
- ``resolution``: ``SecretResolver``, which resolves references from the environment, files
  and the ``secrets:`` resolver commands (concurrently, ``prefetch``), registering every
  value with its redactor; a failing command's stderr is logged scrubbed by ``detection``.
- ``rendering``: a target's essence with references kept or resolved, per target kind.
- ``checks``: the secret rules of desired state (``check_desired``), for the loader.
"""

from reconciler.secrets.checks import check_desired
from reconciler.secrets.detection import (
    Finding,
    arg_secret,
    detect,
    is_secret_value,
    looks_random,
    register_document_literals,
    register_literals,
    scan_essence,
    shannon_entropy,
    template_dsn_secrets,
    template_url_secrets,
    url_secret_parts,
)
from reconciler.secrets.redaction import (
    REDACTOR,
    RedactingFilter,
    RedactingStream,
    Redactor,
    install_logging,
    quiet_libraries,
    redact,
    redact_data,
    wrap_streams,
)
from reconciler.secrets.references import (
    BEARER_ENV,
    ENV,
    ENV_NAME,
    ENV_NAME_PATTERN,
    FILE,
    INFISICAL,
    NOT_SECRET_ENV,
    ONLY_ENV,
    Reference,
    canonical_env,
    env_reference,
    essence_strings,
    essence_texts,
    find_references,
    might_reference,
    reference_problem,
    referenced_env,
    substitute,
    without_references,
)
from reconciler.secrets.rendering import (
    RenderedSecrets,
    can_reference,
    explain,
    header_through_env,
    referable,
    reference_mode,
    render_essence,
    seal_paths,
)
from reconciler.secrets.resolution import SecretError, SecretResolver

__all__ = [
    "BEARER_ENV",
    "ENV",
    "ENV_NAME",
    "ENV_NAME_PATTERN",
    "FILE",
    "INFISICAL",
    "NOT_SECRET_ENV",
    "ONLY_ENV",
    "REDACTOR",
    "Finding",
    "RedactingFilter",
    "RedactingStream",
    "Redactor",
    "Reference",
    "RenderedSecrets",
    "SecretError",
    "SecretResolver",
    "arg_secret",
    "can_reference",
    "canonical_env",
    "check_desired",
    "detect",
    "env_reference",
    "essence_strings",
    "essence_texts",
    "explain",
    "find_references",
    "header_through_env",
    "install_logging",
    "is_secret_value",
    "looks_random",
    "might_reference",
    "quiet_libraries",
    "redact",
    "redact_data",
    "referable",
    "reference_mode",
    "reference_problem",
    "referenced_env",
    "register_document_literals",
    "register_literals",
    "render_essence",
    "scan_essence",
    "seal_paths",
    "shannon_entropy",
    "substitute",
    "template_dsn_secrets",
    "template_url_secrets",
    "url_secret_parts",
    "without_references",
    "wrap_streams",
]
