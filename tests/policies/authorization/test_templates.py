"""Resource templates and rule globs: shapes, specificity, methods, trailing slashes."""

from __future__ import annotations

import pytest

from fastgate.policies.authorization.templates import (
    ResourceTable,
    compile_glob,
    compile_template,
    scope_challenge,
    split_path,
)


def segs(path: str):
    return split_path(path)


@pytest.mark.parametrize("path, expected", [
    ("", ()), ("/", ()), ("/a", ("a",)), ("/a/", ("a",)), ("/a/b", ("a", "b")), ("/a/b/", ("a", "b")),
])
def test_split_path(path, expected):
    assert split_path(path) == expected


@pytest.mark.parametrize("template, path, ok", [
    ("/courses", "/courses", True),
    ("/courses", "/courses/", True),  # a trailing slash never escapes a resource
    ("/courses", "/courses/7", False),
    ("/courses", "/course", False),
    ("/courses", "/Courses", False),  # literal segments are exact
    ("/courses/{id}", "/courses/7", True),
    ("/courses/{id}", "/courses", False),
    ("/courses/{id}", "/courses/7/students", False),
    ("/courses/{id}/students", "/courses/7/students", True),
    ("/courses/*", "/courses/7", True),
    ("/courses/**", "/courses", True),  # zero segments
    ("/courses/**", "/courses/7", True),
    ("/courses/**", "/courses/7/students/3", True),
    ("/courses/**", "/coursesX", False),
    ("/**", "", True),
    ("/**", "/anything/at/all", True),
    ("/", "", True),
    ("/", "/", True),
    ("/", "/a", False),
    ("/files/{name}.json", "/files/a.json", True),
    ("/files/{name}.json", "/files/a.xml", False),
    ("/files/{name}.json", "/files/.json", False),  # a parameter is never empty
    ("/v{major}/items", "/v2/items", True),
])
def test_template_match(template, path, ok):
    assert compile_template(template).match(segs(path)) is ok


@pytest.mark.parametrize("bad", ["courses", "/a/**/b", "/a/**x", "/a/{id", "/a/b*", ""])
def test_template_invalid(bad):
    with pytest.raises(ValueError):
        compile_template(bad)


@pytest.mark.parametrize("glob, path, ok", [
    ("/courses", "/courses", True),
    ("/courses", "/courses/", True),
    ("/courses", "/courses/1", False),
    ("/courses/*", "/courses/1", True),
    ("/courses/*", "/courses", False),
    ("/courses/*", "/courses/1/2", False),
    ("/courses/{id}", "/courses/1", True),
    ("/courses/**", "/courses", True),
    ("/courses/**", "/courses/1/2/3", True),
    ("/courses/**", "/other", False),
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/b", True),
    ("/a/**/b", "/a/x/y/b", True),
    ("/a/**/b", "/a/b/c", False),
    ("/a/**/b", "/ab", False),
    ("/**/secret", "/secret", True),
    ("/**/secret", "/x/y/secret", True),
    ("/**/secret", "/x/secrets", False),
    ("/reports/*.pdf", "/reports/q1.pdf", True),
    ("/reports/*.pdf", "/reports/q1.pdf/x", False),
    ("/reports/*.pdf", "/reports/q1.csv", False),
    ("/**", "", True),
    ("/", "", True),
    ("/", "/x", False),
])
def test_glob_match(glob, path, ok):
    assert compile_glob(glob).match(segs(path)) is ok


def table(*entries) -> ResourceTable:
    t = ResourceTable()
    for i, (path, methods, scopes) in enumerate(entries):
        t.add(path, methods, scopes, f"resources[{i}]")
    return t.freeze()


def source(t: ResourceTable, method: str, path: str):
    r = t.lookup(method.encode(), segs(path))
    return None if r is None else r.source


def test_specificity_literal_param_rest():
    t = table(("/courses/**", (), ("any",)),
              ("/courses/{id}", (), ("one",)),
              ("/courses/mine", (), ("mine",)),
              ("/courses", (), ("list",)))
    assert source(t, "GET", "/courses/mine") == "resources[2]"
    assert source(t, "GET", "/courses/7") == "resources[1]"
    assert source(t, "GET", "/courses/7/students") == "resources[0]"
    assert source(t, "GET", "/courses") == "resources[3]"  # exact end beats "/**" matching nothing
    assert source(t, "GET", "/courses/") == "resources[3]"
    assert source(t, "GET", "/other") is None


def test_specificity_is_left_to_right():
    t = table(("/{kind}/reports", (), ("x",)), ("/teams/{id}", (), ("y",)))
    assert source(t, "GET", "/teams/reports") == "resources[1]"  # literal first segment wins
    assert source(t, "GET", "/orgs/reports") == "resources[0]"


def test_specificity_partial_between_literal_and_param():
    t = table(("/files/{name}", (), ("a",)), ("/files/{name}.json", (), ("b",)),
              ("/files/index.json", (), ("c",)))
    assert source(t, "GET", "/files/index.json") == "resources[2]"
    assert source(t, "GET", "/files/x.json") == "resources[1]"
    assert source(t, "GET", "/files/x.xml") == "resources[0]"


def test_longer_rest_prefix_wins():
    t = table(("/**", (), ("root",)), ("/a/**", (), ("a",)), ("/a/b/**", (), ("ab",)))
    assert source(t, "GET", "/a/b/c/d/e/f/g") == "resources[2]"
    assert source(t, "GET", "/a/c") == "resources[1]"
    assert source(t, "GET", "/z") == "resources[0]"
    assert source(t, "GET", "") == "resources[0]"


def test_methods_filter_candidates():
    t = table(("/courses", ("POST",), ("create",)), ("/courses/{id}", ("GET", "HEAD"), ("view",)),
              ("/courses/**", ("DELETE",), ("admin",)))
    assert source(t, "POST", "/courses") == "resources[0]"
    assert source(t, "GET", "/courses") is None
    assert source(t, "GET", "/courses/1") == "resources[1]"
    assert source(t, "HEAD", "/courses/1") == "resources[1]"
    assert source(t, "PUT", "/courses/1") is None
    assert source(t, "HEAD", "/courses") is None
    assert source(t, "DELETE", "/courses/1") == "resources[2]"
    assert source(t, "DELETE", "/courses") == "resources[2]"


def test_get_covers_head():
    t = table(("/x", ("GET",), ("s",)), ("/y", ("HEAD",), ("h",)))
    assert source(t, "HEAD", "/x") == "resources[0]"
    assert source(t, "GET", "/y") is None


def test_methods_are_case_folded_in_config():
    t = table(("/x", ("post",), ("s",)))
    assert source(t, "POST", "/x") == "resources[0]"


def test_equally_specific_entries_union_their_scopes():
    t = table(("/courses/{id}", (), ("view",)), ("/courses/{cid}", ("DELETE",), ("admin",)))
    r = t.lookup(b"DELETE", segs("/courses/1"))
    assert r.scopes == {"view", "admin"}
    assert 'scope="' in r.challenge and "view" in r.challenge and "admin" in r.challenge
    assert t.lookup(b"GET", segs("/courses/1")).scopes == {"view"}


def test_partials_of_equal_specificity_that_both_match_union():
    t = table(("/f/{a}.json", (), ("json",)), ("/f/x{b}", (), ("x",)), ("/f/{c}", (), ("any",)))
    assert t.lookup(b"GET", segs("/f/x.json")).scopes == {"json", "x"}
    assert t.lookup(b"GET", segs("/f/y.json")).scopes == {"json"}
    assert t.lookup(b"GET", segs("/f/xml")).scopes == {"x"}
    assert t.lookup(b"GET", segs("/f/data")).scopes == {"any"}


def test_same_shape_different_literals_do_not_merge():
    t = table(("/a/{x}", (), ("a",)), ("/b/{x}", (), ("b",)))
    assert t.lookup(b"GET", segs("/a/1")).scopes == {"a"}
    assert t.lookup(b"GET", segs("/b/1")).scopes == {"b"}


def test_more_specific_resource_without_scopes_opens_a_subtree():
    t = table(("/courses/**", (), ("view",)), ("/courses/public/**", (), ()))
    assert t.lookup(b"GET", segs("/courses/public/syllabus")).scopes == frozenset()
    assert t.lookup(b"GET", segs("/courses/7")).scopes == {"view"}


def test_extra_entries_before_freeze_only():
    t = ResourceTable()
    t.add("/a", (), ("x",), "resources[0]")
    t.add("/a/{id}", ("GET",), ("y",), "openapi:GET /a/{id}")
    t.freeze()
    assert t.lookup(b"GET", segs("/a/1")).source == "openapi:GET /a/{id}"
    with pytest.raises(RuntimeError):
        t.add("/b", (), (), "late")


def test_empty_table():
    t = ResourceTable().freeze()
    assert t.lookup(b"GET", segs("/a/b/c")) is None


def test_scope_challenge_rfc6750():
    assert scope_challenge(["a:b", "c"]) == 'Bearer realm="fastgate", error="insufficient_scope", scope="a:b c"'
    # a scope name that could break the header value is left out, never quoted through
    assert scope_challenge(['x"y', "ok", "a\r\nb"]) == (
        'Bearer realm="fastgate", error="insufficient_scope", scope="ok"')
