from __future__ import annotations

from bridge.matrix.auth import TokenCheck, check_hs_token

TOKEN = "s3cret-token"


def test_header_token_accepted() -> None:
    assert check_hs_token({"Authorization": f"Bearer {TOKEN}"}, {}, TOKEN) is TokenCheck.OK


def test_missing_header_is_missing_even_with_query_token() -> None:
    # The spec requires the header since v1.4; the query form alone is not enough.
    assert check_hs_token({}, {"access_token": TOKEN}, TOKEN) is TokenCheck.MISSING
    assert check_hs_token({"Authorization": TOKEN}, {}, TOKEN) is TokenCheck.MISSING


def test_wrong_token_is_wrong() -> None:
    assert check_hs_token({"Authorization": "Bearer nope"}, {}, TOKEN) is TokenCheck.WRONG
    assert check_hs_token({"Authorization": f"Bearer {TOKEN}x"}, {}, TOKEN) is TokenCheck.WRONG


def test_query_token_must_agree_with_header() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert check_hs_token(headers, {"access_token": "other"}, TOKEN) is TokenCheck.WRONG
    assert check_hs_token(headers, {"access_token": TOKEN}, TOKEN) is TokenCheck.OK


def test_non_ascii_token_does_not_crash() -> None:
    assert check_hs_token({"Authorization": "Bearer jé"}, {}, TOKEN) is TokenCheck.WRONG
