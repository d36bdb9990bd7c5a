"""Tests for reading and validating org files (patron.orgs.file)."""

import datetime

import pytest

from patron.orgs.file import OrgFileError, load_org_file, md5_of_password, parse_org_document
from patron.orgs.policy import STANDARD_EXTENDED_FIELD_NAMES, OrgFile

ORG = """
[org]
id = 1
name = "Org"
base_country = "IN"
"""

# An access group, a store with one till, and room to add more after it.
POS = """
[[access_groups]]
name = "pos"
customer = "write"

[[stores]]
code = "s1"
name = "Store 1"
access_group = "pos"

  [[stores.tills]]
  code = "t1"
  password = "Pass123"
"""

SPEC_EXAMPLE = """
[org]
id = 1001                          # integer, unique in the installation
name = "Acme Retail"
base_country = "IN"                # ISO 3166 alpha-2: mobiles are validated for it first
supported_countries = ["AE", "GB"] # further countries a mobile may belong to; ["*"] = any
timezone = "Asia/Kolkata"          # how times without an offset are read and written

[configs]                          # names as in the API family; defaults shown
CONF_REGISTRATION_PRIMARY_KEY = "mobile"        # mobile | email | external_id
CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS = false
CONF_USERS_IS_MOBILE_REQUIRED = false
CONF_USERS_IS_EMAIL_REQUIRED = false
CONF_USERS_IS_EXTERNAL_ID_REQUIRED = false
CONF_PRIMARY_IDENTIFIER_STRICT_CHECK = false
CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH = false
CONF_ALLOW_MOBILE_UPDATE = false
CONF_ALLOW_EMAIL_UPDATE = false
CONF_LOYALTY_ALLOW_EXTERNAL_ID_UPDATE = false
CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED = false
CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH = 0
CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH = 0           # 0 = only the 250 limit
CONF_MIN_REGISTRATION_DATE = "1995-01-01"
BATCH_LIMIT = 100                                 # items per add request

[[access_groups]]
name = "pos"
customer = "write"                 # none | read | write
audit = "none"

[[access_groups]]
name = "admin"
customer = "write"
audit = "read"

[[stores]]
code = "blr.koramangala"
name = "Koramangala"
access_group = "pos"

  [[stores.tills]]
  code = "blr.koramangala.till001" # unique in the installation; the Basic-auth user name
  name = "Till 1"
  password = "Pass123"             # or password_md5 = "<md5 hex>"; stored only as a slow hash

[[api_clients]]
key = "acme-backend"
secret = "a-long-random-secret"    # stored only as a slow hash
access_group = "admin"
default_till = "blr.koramangala.till001"
token_ttl_seconds = 3600

[[custom_fields]]
name = "City_name"
type = "string"                    # string | integer | double | boolean | date | datetime | enum
max_length = 100                   # at most 250
# regex = "^[A-Za-z ]+$"           # optional
# options = ["a", "b"]             # enum only

[[custom_fields]]
name = "pwgConsumption"
type = "double"

[[extended_fields]]                # beyond the standard catalogue in codes.md
name = "age_group"
type = "enum"
options = ["18-25", "26-40", "41+"]

[[programs]]
id = 469
name = "Acme Rewards"
default = true
registration_points = 100          # awarded once to a new LOYALTY customer
referrer_points = 100              # to the owner of the referral_code
referee_points = 0                 # to the new customer, on top of registration_points

  [[programs.slabs]]
  serial = 1
  name = "Base"
  description = "Tier 1"
  validity_months = 0              # 0: never expires (registration + 100 years)

  [[programs.slabs]]
  serial = 2
  name = "Bronze"
  description = "Tier 2"
  validity_months = 12

  [[programs.alternate_currencies]]
  identifier = "rgpws7"
  name = "ac1"
  registration_award = 110         # awarded once to a new LOYALTY customer
"""


def program(id: int = 469, *, default: bool | None = None, body: str = "") -> str:
    """A [[programs]] table; `body` replaces its single "Base" slab."""
    marked = "" if default is None else f"default = {str(default).lower()}\n"
    body = body or '[[programs.slabs]]\nserial = 1\nname = "Base"\n'
    return f'\n[[programs]]\nid = {id}\nname = "P{id}"\n{marked}{body}'


def api_client(*, key: str = "k", secret: str = "12345678", group: str = "pos", till: str = "t1") -> str:
    return (
        f'\n[[api_clients]]\nkey = "{key}"\nsecret = "{secret}"\n'
        f'access_group = "{group}"\ndefault_till = "{till}"\n'
    )


def field(table: str, name: str, type: str, more: str = "") -> str:
    return f'\n[[{table}]]\nname = "{name}"\ntype = "{type}"\n{more}'


def configs(body: str) -> str:
    return ORG + "\n[configs]\n" + body


def load(tmp_path, text: str) -> OrgFile:
    path = tmp_path / "org.toml"
    path.write_text(text, encoding="utf-8")
    return load_org_file(path)


def problems(tmp_path, text: str) -> dict[str, str]:
    with pytest.raises(OrgFileError) as caught:
        load(tmp_path, text)
    return dict(caught.value.problems)


def test_the_example_in_the_spec_loads(tmp_path):
    org = load(tmp_path, SPEC_EXAMPLE)

    assert org.org.id == 1001
    assert org.org.supported_countries == ["AE", "GB"]
    assert org.configs.CONF_MIN_REGISTRATION_DATE == datetime.date(1995, 1, 1)
    assert org.stores[0].tills[0].code == "blr.koramangala.till001"
    assert org.api_clients[0].default_till == "blr.koramangala.till001"
    assert org.extended_fields[0].options == ["18-25", "26-40", "41+"]
    assert [slab.name for slab in org.programs[0].slabs] == ["Base", "Bronze"]
    assert org.programs[0].alternate_currencies[0].registration_award == 110
    assert org.default_program is org.programs[0]


def test_omitted_keys_take_the_documented_defaults(tmp_path):
    org = load(tmp_path, ORG + POS)

    assert org.org.timezone == "UTC"
    assert org.org.supported_countries == []
    assert org.configs.CONF_REGISTRATION_PRIMARY_KEY == "mobile"
    assert org.configs.CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH is False
    assert org.configs.CONF_MIN_REGISTRATION_DATE == datetime.date(1995, 1, 1)
    assert org.configs.BATCH_LIMIT == 100
    assert org.access_groups[0].audit == "none"
    assert org.api_clients == [] and org.programs == []
    assert org.default_program is None


def test_unknown_key_is_refused_with_its_path_and_the_nearest_key_of_its_table(tmp_path):
    found = problems(tmp_path, ORG + POS.replace('code = "t1"', 'code = "t1"\npasword_md5 = "x"'))

    assert found == {"stores[0].tills[0].pasword_md5": "unknown key (did you mean 'password_md5'?)"}


def test_unknown_config_is_refused_with_the_nearest_config(tmp_path):
    found = problems(tmp_path, configs("CONF_ALLOW_MOBILE_UPDATES = true\n"))

    assert found == {"configs.CONF_ALLOW_MOBILE_UPDATES": "unknown key (did you mean 'CONF_ALLOW_MOBILE_UPDATE'?)"}


def test_missing_key_is_reported_as_field_required(tmp_path):
    found = problems(tmp_path, ORG.replace('name = "Org"\n', ""))

    assert found == {"org.name": "field required"}


def test_error_names_the_file_the_key_and_the_reason(tmp_path):
    with pytest.raises(OrgFileError) as caught:
        load(tmp_path, configs("BATCH_LIMIT = 0\n"))

    path = str(tmp_path / "org.toml")
    assert caught.value.path == path
    assert str(caught.value) == f"{path}: configs.BATCH_LIMIT: must be at least 1"


def test_toml_syntax_error_is_reported_with_its_line_and_column(tmp_path):
    found = problems(tmp_path, ORG + "timezone = \n")

    assert list(found) == ["<toml>"]
    assert "line 6" in found["<toml>"] and "column" in found["<toml>"]


def test_unreadable_file_is_refused(tmp_path):
    with pytest.raises(OrgFileError) as caught:
        load_org_file(tmp_path / "missing.toml")

    assert caught.value.problems == [("<file>", "No such file or directory")]


def test_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "org.toml"
    path.write_bytes(ORG.encode("utf-8") + b"\n# caf\xe9\n")

    with pytest.raises(OrgFileError) as caught:
        load_org_file(path)

    assert [key for key, _ in caught.value.problems] == ["<file>"]


def test_parsed_documents_are_named_memory_by_default():
    with pytest.raises(OrgFileError) as caught:
        parse_org_document({"org": {"id": 1, "name": "Org"}})

    assert str(caught.value) == "<memory>: org.base_country: field required"


def test_values_of_the_wrong_toml_type_are_refused(tmp_path):
    text = configs("CONF_ALLOW_MOBILE_UPDATE = 1\n").replace("id = 1", 'id = "1"')

    assert problems(tmp_path, text) == {
        "org.id": "must be an integer",
        "configs.CONF_ALLOW_MOBILE_UPDATE": "must be true or false",
    }


def test_org_id_is_positive_and_name_is_not_empty(tmp_path):
    found = problems(tmp_path, ORG.replace("id = 1", "id = 0").replace('"Org"', '"  "'))

    assert found == {"org.id": "must be greater than 0", "org.name": "must not be empty"}


def test_base_country_is_upper_cased_and_must_be_known(tmp_path):
    assert load(tmp_path, ORG.replace('"IN"', '"in"')).org.base_country == "IN"

    found = problems(tmp_path, ORG.replace('"IN"', '"XX"'))
    assert found == {"org.base_country": "'XX' is not a known ISO 3166 alpha-2 country code"}


def test_supported_countries_are_known_codes_or_a_lone_star(tmp_path):
    assert load(tmp_path, ORG + 'supported_countries = ["*"]\n').org.supported_countries == ["*"]
    assert load(tmp_path, ORG + 'supported_countries = ["ae"]\n').org.supported_countries == ["AE"]

    assert list(problems(tmp_path, ORG + 'supported_countries = ["AE", "ZZ"]\n')) == [
        "org.supported_countries[1]"
    ]
    assert list(problems(tmp_path, ORG + 'supported_countries = ["*", "AE"]\n')) == [
        "org.supported_countries"
    ]


def test_timezone_must_be_known(tmp_path):
    assert load(tmp_path, ORG + 'timezone = "Asia/Kolkata"\n').org.timezone == "Asia/Kolkata"

    for bad in ("Mars/Olympus", "America", "../etc", ""):
        assert problems(tmp_path, ORG + f'timezone = "{bad}"\n') == {
            "org.timezone": f"{bad!r} is not a known time zone"
        }


def test_primary_key_config_must_be_one_of_the_three(tmp_path):
    found = problems(tmp_path, configs('CONF_REGISTRATION_PRIMARY_KEY = "phone"\n'))

    assert found == {
        "configs.CONF_REGISTRATION_PRIMARY_KEY": "must be one of: mobile, email, external_id"
    }


SKIP = "CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH"
SKIP_ALIAS = "CONFIG_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH"


def test_skip_secondary_config_is_read_under_both_names(tmp_path):
    for name in (SKIP, SKIP_ALIAS):
        org = load(tmp_path, configs(f"{name} = true\n"))
        assert org.configs.CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH is True

    both_agree = configs(f"{SKIP} = true\n{SKIP_ALIAS} = true\n")
    assert load(tmp_path, both_agree).configs.CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH is True


def test_skip_secondary_config_problems_name_the_spelling_used(tmp_path):
    assert problems(tmp_path, configs(f'{SKIP_ALIAS} = "yes"\n')) == {
        f"configs.{SKIP_ALIAS}": "must be true or false"
    }


def test_skip_secondary_config_names_must_agree_when_both_given(tmp_path):
    text = configs(f"{SKIP} = true\n{SKIP_ALIAS} = false\n")

    assert problems(tmp_path, text) == {f"configs.{SKIP_ALIAS}": f"contradicts {SKIP}; give only one of them"}


def test_min_registration_date_accepts_a_toml_date_or_a_string(tmp_path):
    for value in ("2001-02-03", '"2001-02-03"'):
        org = load(tmp_path, configs(f"CONF_MIN_REGISTRATION_DATE = {value}\n"))
        assert org.configs.CONF_MIN_REGISTRATION_DATE == datetime.date(2001, 2, 3)


def test_min_registration_date_must_be_a_real_date(tmp_path):
    for value in ('"2001-02-30"', '"20010203"', "2001-02-03T10:00:00", "20010203"):
        found = problems(tmp_path, configs(f"CONF_MIN_REGISTRATION_DATE = {value}\n"))
        assert found == {"configs.CONF_MIN_REGISTRATION_DATE": "must be a date, YYYY-MM-DD"}


def test_external_id_lengths_are_within_250_and_min_does_not_exceed_max(tmp_path):
    def lengths(minimum: int, maximum: int) -> str:
        return configs(
            f"CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH = {minimum}\n"
            f"CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH = {maximum}\n"
        )

    assert load(tmp_path, lengths(10, 0)).configs.CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH == 10
    assert problems(tmp_path, lengths(0, 251)) == {
        "configs.CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH": "must be at most 250"
    }
    assert problems(tmp_path, lengths(-1, 0)) == {
        "configs.CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH": "must be at least 0"
    }
    assert problems(tmp_path, lengths(12, 10)) == {
        "configs.CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH": "must not exceed CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH (10)"
    }


def test_batch_limit_is_between_1_and_1000(tmp_path):
    assert load(tmp_path, configs("BATCH_LIMIT = 1000\n")).configs.BATCH_LIMIT == 1000
    assert problems(tmp_path, configs("BATCH_LIMIT = 1001\n")) == {
        "configs.BATCH_LIMIT": "must be at most 1000"
    }


def test_access_levels_are_none_read_or_write(tmp_path):
    found = problems(tmp_path, ORG + POS.replace('customer = "write"', 'customer = "admin"'))

    assert found == {"access_groups[0].customer": "must be one of: none, read, write"}


def test_access_group_names_are_unique(tmp_path):
    found = problems(tmp_path, ORG + POS + '[[access_groups]]\nname = "pos"\n')

    assert found == {"access_groups[1].name": "'pos' is already used at access_groups[0].name"}


def test_store_codes_are_unique(tmp_path):
    found = problems(tmp_path, ORG + POS + '[[stores]]\ncode = "s1"\nname = "Again"\naccess_group = "pos"\n')

    assert found == {"stores[1].code": "'s1' is already used at stores[0].code"}


def test_stores_and_api_clients_must_name_a_declared_access_group(tmp_path):
    stores = POS.replace('access_group = "pos"', 'access_group = "POS"')

    assert problems(tmp_path, ORG + stores + api_client(group="ops")) == {
        "stores[0].access_group": "no access group is named 'POS'",
        "api_clients[0].access_group": "no access group is named 'ops'",
    }


def test_till_name_defaults_to_its_code(tmp_path):
    till = load(tmp_path, ORG + POS).stores[0].tills[0]

    assert till.name == "t1"


def test_till_needs_exactly_one_of_password_and_password_md5(tmp_path):
    neither = POS.replace('password = "Pass123"', "")
    both = POS.replace('password = "Pass123"', f'password = "Pass123"\npassword_md5 = "{"a" * 32}"')

    for stores in (neither, both):
        assert problems(tmp_path, ORG + stores) == {
            "stores[0].tills[0]": "give exactly one of password, password_md5"
        }


def test_till_password_md5_is_32_hex_digits_and_is_lower_cased(tmp_path):
    def with_md5(digest: str) -> str:
        return ORG + POS.replace('password = "Pass123"', f'password_md5 = "{digest}"')

    till = load(tmp_path, with_md5("2F23FA3579F3F75175793649115C1B25")).stores[0].tills[0]
    assert till.password_md5 == "2f23fa3579f3f75175793649115c1b25"

    for bad in ("2f23fa3579f3f75175793649115c1b2", "zf23fa3579f3f75175793649115c1b25"):
        assert problems(tmp_path, with_md5(bad)) == {
            "stores[0].tills[0].password_md5": "must be an MD5 digest: 32 hexadecimal digits"
        }


def test_till_code_is_1_to_50_characters_without_a_colon(tmp_path):
    def with_code(code: str) -> str:
        return ORG + POS.replace('"t1"', f'"{code}"')

    assert problems(tmp_path, with_code("t" * 51)) == {
        "stores[0].tills[0].code": "must be at most 50 characters long"
    }
    assert problems(tmp_path, with_code("")) == {"stores[0].tills[0].code": "must not be empty"}
    assert problems(tmp_path, with_code("t:1")) == {"stores[0].tills[0].code": "must not contain ':'"}


def test_till_codes_are_unique_in_the_file(tmp_path):
    second_store = (
        '[[stores]]\ncode = "s2"\nname = "Store 2"\naccess_group = "pos"\n'
        '  [[stores.tills]]\n  code = "t2"\n  password = "x"\n'
        '  [[stores.tills]]\n  code = "t1"\n  password = "y"\n'
    )

    assert problems(tmp_path, ORG + POS + second_store) == {
        "stores[1].tills[1].code": "'t1' is already used at stores[0].tills[0].code"
    }


def test_api_client_default_till_must_be_declared_in_the_file(tmp_path):
    assert problems(tmp_path, ORG + POS + api_client(till="t9")) == {
        "api_clients[0].default_till": "no till in this file has code 't9'"
    }


def test_a_console_users_tills_and_api_clients_must_be_declared_in_the_file(tmp_path):
    user = (
        '\n[[console_users]]\nlogin = "priya"\npassword = "priya-passphrase"\naccess_group = "pos"\n'
        'tills = ["t1", "t9"]\napi_clients = ["k", "nobody"]\n'
    )
    assert problems(tmp_path, ORG + POS + api_client() + user) == {
        "console_users[0].tills[1]": "no till in this file has code 't9'",
        "console_users[0].api_clients[1]": "no API client in this file has key 'nobody'",
    }
    tied = load(tmp_path, ORG + POS + api_client() + user.replace(', "t9"', "").replace(', "nobody"', ""))
    assert (tied.console_users[0].tills, tied.console_users[0].api_clients) == (["t1"], ["k"])


def test_api_client_secret_is_at_least_8_characters(tmp_path):
    assert problems(tmp_path, ORG + POS + api_client(secret="1234567")) == {
        "api_clients[0].secret": "must be at least 8 characters long"
    }


def test_api_client_token_ttl_is_between_60_and_86400_seconds(tmp_path):
    assert load(tmp_path, ORG + POS + api_client()).api_clients[0].token_ttl_seconds == 3600
    assert problems(tmp_path, ORG + POS + api_client() + "token_ttl_seconds = 59\n") == {
        "api_clients[0].token_ttl_seconds": "must be at least 60"
    }
    assert problems(tmp_path, ORG + POS + api_client() + "token_ttl_seconds = 86401\n") == {
        "api_clients[0].token_ttl_seconds": "must be at most 86400"
    }


def test_api_client_keys_are_unique(tmp_path):
    assert problems(tmp_path, ORG + POS + api_client() + api_client()) == {
        "api_clients[1].key": "'k' is already used at api_clients[0].key"
    }


def test_field_type_must_be_known(tmp_path):
    assert problems(tmp_path, ORG + field("custom_fields", "f", "text")) == {
        "custom_fields[0].type": "must be one of: string, integer, double, boolean, date, datetime, enum"
    }


def test_field_max_length_is_1_to_250_and_defaults_to_250(tmp_path):
    assert load(tmp_path, ORG + field("custom_fields", "f", "string")).custom_fields[0].max_length == 250
    assert problems(tmp_path, ORG + field("custom_fields", "f", "string", "max_length = 251\n")) == {
        "custom_fields[0].max_length": "must be at most 250"
    }


def test_field_regex_must_compile(tmp_path):
    found = problems(tmp_path, ORG + field("custom_fields", "f", "string", 'regex = "^[a-z"\n'))

    assert list(found) == ["custom_fields[0].regex"]
    assert found["custom_fields[0].regex"].startswith("is not a valid regular expression")


def test_enum_fields_need_options_and_other_fields_refuse_them(tmp_path):
    assert problems(tmp_path, ORG + field("extended_fields", "f", "enum")) == {
        "extended_fields[0].options": "required for type enum"
    }
    assert problems(tmp_path, ORG + field("custom_fields", "f", "string", 'options = ["a"]\n')) == {
        "custom_fields[0].options": "allowed only for type enum"
    }
    assert problems(tmp_path, ORG + field("custom_fields", "f", "enum", 'options = ["a", "a"]\n')) == {
        "custom_fields[0].options[1]": "'a' is already used at custom_fields[0].options[0]"
    }


def test_custom_field_names_are_unique_ignoring_case(tmp_path):
    fields = field("custom_fields", "City", "string") + field("custom_fields", "city", "string")

    assert problems(tmp_path, ORG + fields) == {
        "custom_fields[1].name": "'city' is already used at custom_fields[0].name"
    }


def test_extended_field_names_are_unique_ignoring_case(tmp_path):
    fields = field("extended_fields", "Tier", "string") + field("extended_fields", "TIER", "string")

    assert problems(tmp_path, ORG + fields) == {
        "extended_fields[1].name": "'TIER' is already used at extended_fields[0].name"
    }


def test_extended_field_may_not_reuse_a_standard_name_in_any_case(tmp_path):
    for name in ("gender", "SSNNUMBER", "Preferred_Store"):
        assert problems(tmp_path, ORG + field("extended_fields", name, "string")) == {
            "extended_fields[0].name": f"{name!r} is a standard extended field and is already defined"
        }


def test_standard_extended_field_names_are_those_of_codes_md():
    assert STANDARD_EXTENDED_FIELD_NAMES == {
        "gender", "marital_status", "dob", "wedding_date", "age",
        "city", "state", "area", "zip", "profession", "religion", "ethnicity", "ssnNumber",
        "nationality", "born_in", "country_of_residence",
        "preferred_language", "preferred_currency", "preferred_store", "kid_status",
    }  # fmt: skip


def test_program_needs_at_least_one_slab(tmp_path):
    assert problems(tmp_path, ORG + program(body="slabs = []\n")) == {
        "programs[0].slabs": "must not be empty"
    }


def test_slab_serials_run_from_1_in_order(tmp_path):
    slabs = '[[programs.slabs]]\nserial = 2\nname = "A"\n[[programs.slabs]]\nserial = 1\nname = "B"\n'

    assert problems(tmp_path, ORG + program(body=slabs)) == {
        "programs[0].slabs[0].serial": "must be 1: serials run 1, 2, 3, ... in order",
        "programs[0].slabs[1].serial": "must be 2: serials run 1, 2, 3, ... in order",
    }


def test_slab_names_are_unique_in_a_program_ignoring_case(tmp_path):
    slabs = '[[programs.slabs]]\nserial = 1\nname = "Gold"\n[[programs.slabs]]\nserial = 2\nname = "gold"\n'

    assert problems(tmp_path, ORG + program(body=slabs)) == {
        "programs[0].slabs[1].name": "'gold' is already used at programs[0].slabs[0].name"
    }


def test_alternate_currency_identifiers_are_unique_in_a_program(tmp_path):
    currency = '[[programs.alternate_currencies]]\nidentifier = "c1"\nname = "C"\n'
    body = '[[programs.slabs]]\nserial = 1\nname = "Base"\n' + currency + currency

    assert problems(tmp_path, ORG + program(body=body)) == {
        "programs[0].alternate_currencies[1].identifier": (
            "'c1' is already used at programs[0].alternate_currencies[0].identifier"
        )
    }


def test_points_and_awards_are_not_negative(tmp_path):
    body = (
        "referee_points = -5\n"
        '[[programs.slabs]]\nserial = 1\nname = "Base"\nvalidity_months = -1\n'
        '[[programs.alternate_currencies]]\nidentifier = "c1"\nname = "C"\nregistration_award = -1\n'
    )

    assert problems(tmp_path, ORG + program(body=body)) == {
        "programs[0].referee_points": "must be at least 0",
        "programs[0].slabs[0].validity_months": "must be at least 0",
        "programs[0].alternate_currencies[0].registration_award": "must be at least 0",
    }


def test_program_ids_are_unique(tmp_path):
    assert problems(tmp_path, ORG + program(7, default=True) + program(7)) == {
        "programs[1].id": "7 is already used at programs[0].id"
    }


def test_exactly_one_program_is_the_default(tmp_path):
    org = load(tmp_path, ORG + program(1) + program(2, default=True))
    assert org.default_program is org.programs[1]

    assert problems(tmp_path, ORG + program(1) + program(2)) == {
        "programs": "mark exactly one programme default = true"
    }
    assert problems(tmp_path, ORG + program(1, default=True) + program(2, default=True)) == {
        "programs[1].default": "only one programme may be the default"
    }


def test_a_lone_program_is_the_default_without_being_marked(tmp_path):
    org = load(tmp_path, ORG + program(1))

    assert org.programs[0].default is False
    assert org.default_program is org.programs[0]


def test_every_problem_is_reported_at_once(tmp_path):
    text = (
        ORG.replace('"IN"', '"XX"')
        + 'colour = "blue"\n'
        + "[configs]\nBATCH_LIMIT = 0\n"
        + POS.replace('customer = "write"', 'customer = "all"').replace('password = "Pass123"', "")
    )

    with pytest.raises(OrgFileError) as caught:
        load(tmp_path, text)

    assert dict(caught.value.problems) == {
        "org.base_country": "'XX' is not a known ISO 3166 alpha-2 country code",
        "org.colour": "unknown key",
        "configs.BATCH_LIMIT": "must be at least 1",
        "access_groups[0].customer": "must be one of: none, read, write",
        "stores[0].tills[0]": "give exactly one of password, password_md5",
    }
    assert len(str(caught.value).splitlines()) == 5


def test_every_whole_file_problem_is_reported_at_once(tmp_path):
    text = ORG + POS + POS + api_client(group="ops", till="t9") + program(1) + program(2)

    assert set(problems(tmp_path, text)) == {
        "access_groups[1].name",
        "stores[1].code",
        "stores[1].tills[0].code",
        "api_clients[0].access_group",
        "api_clients[0].default_till",
        "programs",
    }


def test_md5_of_password_matches_the_access_worked_example(tmp_path):
    till = load(tmp_path, ORG + POS).stores[0].tills[0]

    assert md5_of_password(till) == "2f23fa3579f3f75175793649115c1b25"


def test_md5_of_password_returns_a_given_digest_lower_cased(tmp_path):
    stores = POS.replace('password = "Pass123"', 'password_md5 = "0123456789ABCDEF0123456789ABCDEF"')
    till = load(tmp_path, ORG + stores).stores[0].tills[0]

    assert md5_of_password(till) == "0123456789abcdef0123456789abcdef"


def test_credentials_are_left_out_of_reprs(tmp_path):
    org = load(tmp_path, ORG + POS + api_client(secret="a-long-random-secret"))

    assert "Pass123" not in repr(org)
    assert "a-long-random-secret" not in repr(org)
