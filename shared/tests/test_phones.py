import pytest

from shared.phones import NotAPhoneNumber, e164


@pytest.mark.parametrize(("written", "number"), [
    ("023111111", "+85523111111"),
    ("023 111 111", "+85523111111"),
    ("012-345-678", "+85512345678"),
    ("(097) 7123 456", "+855977123456"),
    ("+855 23 111 111", "+85523111111"),
    ("+855 023 111 111", "+85523111111"),
    ("00855 12 345 678", "+85512345678"),
    ("85512345678", "+85512345678"),
    ("+66 2 123 4567", "+6621234567"),
    ("0066 2 123 4567", "+6621234567"),
])
def test_numbers_become_e164(written, number):
    assert e164(written) == number


@pytest.mark.parametrize("garbage", ["", "   ", "n/a", "023-11", "12345678", "0231111111111",
                                     "+12", "+85512", "023 111 111 ext 5", "០២៣១១១១១១", "+0123456789"])
def test_what_cannot_be_a_number_is_refused_with_the_reason(garbage):
    with pytest.raises(NotAPhoneNumber) as refused:
        e164(garbage)
    assert str(refused.value)
