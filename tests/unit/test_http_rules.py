"""``google.api.http`` path templates and the route table, sans-IO: parsing, matching,
percent-encoding, precedence, conflicts and 405 detection."""

from __future__ import annotations

import pytest

from connectpy._server.http_rules import (
    HttpRoute,
    Matched,
    NotAllowed,
    RouteTable,
    parse_template,
    split_path,
)


def match(template: str, path: str) -> dict[str, str] | None:
    return parse_template(template).match(split_path(path))


@pytest.mark.parametrize(
    ("template", "path", "values"),
    [
        ("/v1/books/{id}", "/v1/books/123", {"id": "123"}),
        ("/v1/books/{book.id}", "/v1/books/9", {"book.id": "9"}),
        ("/v1/{name=shelves/*}", "/v1/shelves/s1", {"name": "shelves/s1"}),
        (
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/s1/books/b2",
            {"name": "shelves/s1/books/b2"},
        ),
        ("/v1/{name=**}", "/v1/a/b/c", {"name": "a/b/c"}),
        ("/v1/{name=**}", "/v1", {"name": ""}),
        ("/v1/*/books", "/v1/anything/books", {}),
        ("/v1/books/{id}:publish", "/v1/books/7:publish", {"id": "7"}),
        ("/v1/{name=books/*}:publish", "/v1/books/7:publish", {"name": "books/7"}),
        ("/v1/books", "/v1/books", {}),
    ],
)
def test_templates_match(template: str, path: str, values: dict[str, str]) -> None:
    assert match(template, path) == values


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/v1/books/{id}", "/v1/books"),
        ("/v1/books/{id}", "/v1/books/1/2"),
        ("/v1/books/{id}", "/v1/books/"),  # an empty segment binds nothing
        ("/v1/books/{id}", "/v2/books/1"),
        ("/v1/{name=shelves/*}", "/v1/racks/1"),
        ("/v1/books/{id}:publish", "/v1/books/7"),
        ("/v1/books/{id}:publish", "/v1/books/7:delete"),
        ("/v1/books", "/v1/books/1"),
    ],
)
def test_templates_reject(template: str, path: str) -> None:
    assert match(template, path) is None


def test_a_rule_without_verb_keeps_the_colon_in_the_value() -> None:
    assert match("/v1/books/{id}", "/v1/books/7:publish") == {"id": "7:publish"}


def test_percent_encoded_segments_are_decoded_after_splitting() -> None:
    # %2F is a slash inside one segment: it must not split the path.
    assert match("/v1/books/{id}", "/v1/books/a%2Fb") == {"id": "a/b"}
    assert match("/v1/books/{id}", "/v1/books/caf%C3%A9%20au%20lait") == {"id": "café au lait"}
    assert match("/v1/b%6Foks/{id}", "/v1/books/1") == {"id": "1"}  # literals decode too
    assert match("/v1/books/{id}", "/v1/b%6Foks/1") == {"id": "1"}


def test_multi_segment_variables_keep_encoded_slashes() -> None:
    # http.proto: the server decodes multi-segment values except %2F, which stays encoded.
    assert match("/v1/{name=**}", "/v1/a%2Fb/c%20d") == {"name": "a%2Fb/c d"}
    assert match("/v1/{name=shelves/*}", "/v1/shelves/x%2fy") == {"name": "shelves/x%2Fy"}


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("v1/books", "must start with '/'"),
        ("/v1/{id", "unclosed"),
        ("/v1/{a{b}}", "unbalanced or nested"),
        ("/v1/id}", "unbalanced"),
        ("/v1/{a}/{a}", "binds 'a' twice"),
        ("/v1/**/x", "'\\*\\*' must be the last segment"),
        ("/v1/{name=**}/x", "'\\*\\*' must be the last segment"),
        ("/v1/{a.1}", "'a.1' is not a field path"),
        ("/v1/{}", "'' is not a field path"),
        ("/v1//x", "invalid segment ''"),
        ("/v1/x{a}", "invalid segment 'x{a}'"),
        ("/v1/b*", "invalid segment 'b\\*'"),
        ("/v1/{id}:", "invalid verb ''"),
        ("/v1/{id}:do*", "invalid verb"),
    ],
)
def test_malformed_templates_fail_with_a_reason(template: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_template(template)


def route(method: str, template: str, target: str) -> HttpRoute[str]:
    return HttpRoute(method, parse_template(template), target, f"Svc.{target}")


def lookup(table: RouteTable[str], method: str, path: str) -> str | tuple[str, ...] | None:
    found = table.match(method, split_path(path))
    if isinstance(found, Matched):
        return found.route.target
    if isinstance(found, NotAllowed):
        return found.allowed
    return None


def test_literal_segments_win_over_variables_whatever_the_order() -> None:
    table: RouteTable[str] = RouteTable()
    table.add([route("GET", "/v1/{name=**}", "any"), route("GET", "/v1/books/{id}", "book")])
    table.add([route("GET", "/v1/books/special", "special")])
    assert lookup(table, "GET", "/v1/books/special") == "special"
    assert lookup(table, "GET", "/v1/books/1") == "book"
    assert lookup(table, "GET", "/v1/shelves/1") == "any"


def test_a_verb_rule_wins_over_a_variable_that_would_swallow_it() -> None:
    table: RouteTable[str] = RouteTable()
    table.add([route("POST", "/v1/books/{id}", "update"), route("POST", "/v1/books/{id}:x", "x")])
    assert lookup(table, "POST", "/v1/books/1:x") == "x"
    assert lookup(table, "POST", "/v1/books/1") == "update"


def test_method_mismatch_lists_the_allowed_methods() -> None:
    table: RouteTable[str] = RouteTable()
    table.add([route("GET", "/v1/books/{id}", "get"), route("DELETE", "/v1/books/{id}", "del")])
    assert lookup(table, "PUT", "/v1/books/1") == ("DELETE", "GET")
    assert lookup(table, "GET", "/v1/nothing") is None


def test_a_more_specific_rule_of_another_method_does_not_hide_a_match() -> None:
    table: RouteTable[str] = RouteTable()
    table.add([route("DELETE", "/v1/books/special", "del"), route("GET", "/v1/books/{id}", "get")])
    assert lookup(table, "GET", "/v1/books/special") == "get"


@pytest.mark.parametrize(
    ("first", "second", "path"),
    [
        ("/v1/books/{id}", "/v1/books/{name}", "/v1/books/1"),
        ("/v1/books/{id}", "/v1/books/*", "/v1/books/1"),
        ("/v1/{name=shelves/*}", "/v1/shelves/{id}", "/v1/shelves/1"),
        ("/v1/{a=**}:go", "/v1/{b=**}:go", "/v1/x/y:go"),
    ],
)
def test_rules_matching_the_same_paths_conflict(first: str, second: str, path: str) -> None:
    table: RouteTable[str] = RouteTable()
    table.add([route("GET", first, "one")])
    with pytest.raises(ValueError, match=r"HTTP rule Svc\.two \(GET .*\) conflicts with Svc\.one"):
        table.add([route("GET", second, "two")])
    assert lookup(table, "GET", path) == "one"  # the failed add changed nothing


def test_conflicts_within_one_batch_add_nothing() -> None:
    table: RouteTable[str] = RouteTable()
    with pytest.raises(ValueError, match="conflicts"):
        table.add([route("GET", "/v1/a/{x}", "one"), route("GET", "/v1/a/{y}", "two")])
    assert not table


def test_same_path_different_methods_or_verbs_do_not_conflict() -> None:
    table: RouteTable[str] = RouteTable()
    table.add(
        [
            route("GET", "/v1/books/{id}", "get"),
            route("PATCH", "/v1/books/{id}", "patch"),
            route("GET", "/v1/books/{id}:preview", "preview"),
        ]
    )
    assert lookup(table, "PATCH", "/v1/books/1") == "patch"
    assert lookup(table, "GET", "/v1/books/1:preview") == "preview"
