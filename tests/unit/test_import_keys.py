"""An import never runs two batches about one customer at once: their identity keys meet."""

import pytest

from patron.bulk import _identifier_values
from patron.customers.fields import identity_key

ONE_MOBILE = ["919845012345", "+91 98450 12345", "09845012345", "9845012345", "(+91) 98450-12345",
              "\u0669\u0661\u0669\u0668\u0664\u0665\u0660\u0661\u0662\u0663\u0664\u0665",  # Arabic-Indic digits
              "\uff19\uff11\uff19\uff18\uff14\uff15\uff10\uff11\uff12\uff13\uff14\uff15",  # fullwidth digits
              919845012345]


@pytest.mark.parametrize("spelling", ONE_MOBILE)
def test_every_spelling_of_one_mobile_shares_its_key(spelling):
    assert identity_key("mobile", spelling) == identity_key("mobile", "919845012345")


def test_an_email_or_external_id_shares_its_key_with_its_other_case_and_nfkc_form():
    assert identity_key("email", " Ａnna@Example.com ") == identity_key("email", "anna@example.com")
    assert identity_key("external_id", "ＣＡＲＤ-7") == identity_key("external_id", "card-7")


def test_a_value_that_is_no_identifier_has_no_key():
    assert identity_key("mobile", "") is None
    assert identity_key("mobile", "no digits") is None
    assert identity_key("email", None) is None


def test_batches_naming_one_customer_by_different_spellings_conflict():
    first = _identifier_values([(1, {"mobile": "+91 98450 12345"}), (2, "unreadable row")])
    second = _identifier_values([(3, {"mobile": "\u0669\u0661\u0669\u0668\u0664\u0665\u0660\u0661\u0662\u0663\u0664\u0665"})])
    other = _identifier_values([(4, {"mobile": "919845099999", "email": "x@example.com"})])
    assert first & second
    assert not first & other
