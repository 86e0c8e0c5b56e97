import base64
import json

import psycopg
import pytest

from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault, VaultError, config_aad, generate_key, key_id

ZOHO = {
    "organization_id": "60012345678",
    "client_id": "1000.CLIENT",
    "client_secret": "zoho-client-secret-value",
    "refresh_token": "1000.refresh-token-value",
}


def test_round_trip_and_key_id_in_envelope():
    vault = Vault.from_strings(generate_key())
    sealed = vault.encrypt({"password": "s3cret"}, "accounting_configs/1/acme/busy")
    assert "s3cret" not in sealed
    assert json.loads(sealed)["kid"] == vault.current_key_id
    assert vault.decrypt(sealed, "accounting_configs/1/acme/busy") == {"password": "s3cret"}


def test_wrong_key_is_rejected_with_a_message_naming_the_variables():
    sealed = Vault.from_strings(generate_key()).encrypt({"a": 1}, "x")
    with pytest.raises(VaultError, match="CREDENTIAL_ENCRYPTION_OLD_KEYS"):
        Vault.from_strings(generate_key()).decrypt(sealed, "x")


def test_tampered_ciphertext_is_rejected_never_garbage():
    vault = Vault.from_strings(generate_key())
    envelope = json.loads(vault.encrypt({"token": "abc"}, "x"))
    ct = bytearray(envelope["ct"].encode())
    ct[5] = ord("A") if ct[5] != ord("A") else ord("B")
    envelope["ct"] = ct.decode()
    with pytest.raises(VaultError, match="failed authentication"):
        vault.decrypt(json.dumps(envelope), "x")
    with pytest.raises(VaultError, match="not a vault envelope"):
        vault.decrypt("plaintext-password", "x")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "CREDENTIAL_ENCRYPTION_KEY is not set"),
        ("", "CREDENTIAL_ENCRYPTION_KEY is not set"),
        ("c2hvcnQ=", "CREDENTIAL_ENCRYPTION_KEY must be base64 of 32 bytes"),
        ("not base64!!", "CREDENTIAL_ENCRYPTION_KEY is not valid base64"),
    ],
)
def test_missing_short_or_malformed_key_names_the_variable(value, message):
    with pytest.raises(VaultError, match=message):
        Vault.from_strings(value)


def test_bad_old_key_names_its_variable():
    with pytest.raises(VaultError, match="CREDENTIAL_ENCRYPTION_OLD_KEYS"):
        Vault.from_strings(generate_key(), "c2hvcnQ=")


def _sealed(url: str, tenant: str, system: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, connection_config FROM hub.accounting_configs "
            "WHERE tenant_id = %s AND system = %s",
            (tenant, system),
        ).fetchone()


def test_credentials_are_encrypted_at_rest(warehouse):
    registry = TenantRegistry(Vault.from_strings(generate_key()))
    registry.add("acme", "zoho_books", ZOHO)
    _, stored = _sealed(warehouse, "acme", "zoho_books")
    assert "zoho-client-secret-value" not in stored
    assert "1000.refresh-token-value" not in stored
    got = registry.get("acme", "zoho_books").connection
    assert got.refresh_token.get_secret_value() == "1000.refresh-token-value"


def test_ciphertext_copied_to_another_row_fails_to_decrypt(warehouse):
    registry = TenantRegistry(Vault.from_strings(generate_key()))
    registry.add("acme", "zoho_books", ZOHO)
    registry.add("globex", "zoho_books", {**ZOHO, "client_secret": "globex-secret"})
    _, acme_sealed = _sealed(warehouse, "acme", "zoho_books")
    with psycopg.connect(warehouse) as conn:
        conn.execute(
            "UPDATE hub.accounting_configs SET connection_config = %s WHERE tenant_id = 'globex'",
            (acme_sealed,),
        )
    with pytest.raises(VaultError, match="another config row"):
        registry.get("globex", "zoho_books")
    assert registry.get("acme", "zoho_books").connection.client_id == "1000.CLIENT"


def test_rotation_reencrypts_every_row_with_the_new_key(warehouse):
    old_key, new_key = generate_key(), generate_key()
    TenantRegistry(Vault.from_strings(old_key)).add("acme", "zoho_books", ZOHO)
    TenantRegistry(Vault.from_strings(old_key)).add(
        "acme", "busy", {"username": "u", "password": "busy-pass", "company_code": "Comp0001"}
    )
    rotating = TenantRegistry(Vault.from_strings(new_key, old_key))
    assert rotating.rotate_keys() == 2
    assert rotating.rotate_keys() == 0  # already current
    only_new = TenantRegistry(Vault.from_strings(new_key))
    assert only_new.get("acme", "busy").connection.password.get_secret_value() == "busy-pass"
    config_id, sealed = _sealed(warehouse, "acme", "zoho_books")
    assert json.loads(sealed)["kid"] == only_new.vault.current_key_id
    with pytest.raises(VaultError):
        Vault.from_strings(old_key).decrypt(sealed, config_aad(config_id, "acme", "zoho_books"))


def test_rotation_without_the_old_key_changes_nothing(warehouse):
    old_key = generate_key()
    TenantRegistry(Vault.from_strings(old_key)).add("acme", "zoho_books", ZOHO)
    _, before = _sealed(warehouse, "acme", "zoho_books")
    with pytest.raises(VaultError, match=key_id(base64.b64decode(old_key))):
        TenantRegistry(Vault.from_strings(generate_key())).rotate_keys()
    assert _sealed(warehouse, "acme", "zoho_books")[1] == before


def test_rotation_stopped_by_a_corrupted_row_names_it_and_the_way_past_it(warehouse):
    old_key, new_key = generate_key(), generate_key()
    TenantRegistry(Vault.from_strings(old_key)).add("acme", "zoho_books", ZOHO)
    TenantRegistry(Vault.from_strings(old_key)).add("globex", "zoho_books", ZOHO)
    with psycopg.connect(warehouse) as conn:
        conn.execute(
            "UPDATE hub.accounting_configs SET connection_config = 'garbage' "
            "WHERE tenant_id = 'globex'"
        )
    rotating = TenantRegistry(Vault.from_strings(new_key, old_key))
    with pytest.raises(VaultError) as refused:
        rotating.rotate_keys()
    message = str(refused.value)
    assert "globex zoho_books" in message and "corrupted row" in message
    assert (
        "Nothing was re-encrypted" in message and "hub tenants remove globex zoho_books" in message
    )
    assert (
        json.loads(_sealed(warehouse, "acme", "zoho_books")[1])["kid"]
        != rotating.vault.current_key_id
    )

    rotating.remove("globex", "zoho_books")  # the way past it that the message names
    assert rotating.rotate_keys() == 1
