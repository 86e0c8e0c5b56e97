"""Database passwords the hub generates: the embedded server's superuser and analysts' roles.

The server is given a SCRAM-SHA-256 verifier computed here, never the password itself, as psql's
`\\password` does: a password in `CREATE ROLE … PASSWORD '…'` could otherwise reach the server
log (`log_statement`), pg_stat_statements or an error report. PostgreSQL stores a verifier as it
is given (RFC 5802 / RFC 7677; the layout is PostgreSQL's `SCRAM-SHA-256$<iterations>:<salt>$
<StoredKey>:<ServerKey>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def new_password() -> str:
    """32 URL-safe characters (192 random bits): nothing to escape in a URL or a .env file."""
    return secrets.token_urlsafe(24)


def scram_sha256_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """The verifier PostgreSQL stores for `password`. The passwords the hub makes are ASCII, for
    which SASLprep (the normalisation PostgreSQL applies first) changes nothing."""
    if not password.isascii():
        raise ValueError("only ASCII passwords are turned into verifiers here")
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )
