"""The indexed lookups against plain reference implementations (hypothesis): ResourceTable
(per method / segment count / first segment, merged ties) against "every entry, most specific
key, union of ties"; RuleIndex + Authorizer against "every rule, in order, first match"."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate.config.model import Authorization, PolicyRule
from fastgate.policies.authorization.rules import Rule
from fastgate.policies.authorization.templates import ResourceTable, compile_template, split_path

from .support import authorizer, outcome, user

SEGMENTS = ["a", "b", "{id}", "x{n}", "{n}.json"]
REQ_SEGMENTS = ["a", "b", "x1", "x.json", "1.json"]
METHODS = ["GET", "POST", "DELETE"]
SCOPES = ["s1", "s2", "s3", "s4"]

# a fixed pool (so equally specific shapes meet often) and free compositions
POOL = ["/", "/**", "/a/**", "/{id}", "/x{n}", "/{n}.json", "/a/x{n}", "/a/{n}.json", "/{n}.json/**",
        "/x{n}/**"]
templates = st.sampled_from(POOL) | st.builds(
    lambda segs, rest: "/" + "/".join(segs + (["**"] if rest else [])) if segs or rest else "/",
    st.lists(st.sampled_from(SEGMENTS), max_size=3), st.booleans())
req_paths = st.lists(st.sampled_from(REQ_SEGMENTS), max_size=3).map(lambda s: "/" + "/".join(s))
method_sets = st.lists(st.sampled_from(METHODS), max_size=2, unique=True)
resources = st.lists(st.tuples(templates, method_sets, st.lists(st.sampled_from(SCOPES), max_size=2)),
                     max_size=8)


def reference_lookup(entries, method: str, path: str):
    segs = split_path(path)
    matching = []
    for tpl, methods, scopes in entries:
        p = compile_template(tpl)
        if (not methods or method in methods) and p.match(segs):
            matching.append((p.key, scopes))
    if not matching:
        return None
    best = max(k for k, _ in matching)
    return {s for k, scopes in matching if k == best for s in scopes}


def instantiate(template: str, data) -> str:
    """A request path the template matches ("x.json" fits every one-segment placeholder)."""
    out = []
    for seg in split_path(template):
        if seg == "**":
            out += data.draw(st.lists(st.sampled_from(REQ_SEGMENTS), max_size=2))
        elif "{" in seg:
            out.append(data.draw(st.sampled_from(["x.json", "x.json", "a", "1.json"])))
        else:
            out.append(seg)
    return "/" + "/".join(out)


@settings(max_examples=500, deadline=None)
@given(resources, st.sampled_from(METHODS), st.data())
def test_resource_table_matches_reference(entries, method, data):
    if entries and data.draw(st.booleans()):
        path = instantiate(data.draw(st.sampled_from(entries))[0], data)
    else:
        path = data.draw(req_paths)
    check_table(entries, method, path)


@pytest.mark.parametrize("entries, method, path", [
    ([("/x{n}", [], ["s1"]), ("/{n}.json", [], ["s2"])], "GET", "/x.json"),
    ([("/a/{id}", ["GET"], ["s1"]), ("/a/{n}", [], ["s2"]), ("/a/**", [], ["s3"])], "GET", "/a/b"),
])
def test_resource_table_examples(entries, method, path):
    check_table(entries, method, path)


def check_table(entries, method, path):
    table = ResourceTable()
    for i, (tpl, methods, scopes) in enumerate(entries):
        table.add(tpl, methods, scopes, f"resources[{i}]")
    table.freeze()
    got = table.lookup(method.encode(), split_path(path))
    want = reference_lookup(entries, method, path)
    assert (None if got is None else set(got.scopes)) == want


GLOBS = ["/a/**", "/a/*", "/b/{id}", "/**/c", "/a", "/", "/x*/**", "/*/b/**"]
ROLES = ["r1", "r2", "r3"]

rules = st.lists(st.builds(
    lambda allow, methods, path, roles: (allow, tuple(methods), path, tuple(roles)),
    st.booleans(), method_sets, st.none() | st.sampled_from(GLOBS),
    st.lists(st.sampled_from(ROLES), max_size=2, unique=True)), max_size=8)


def reference_rules(specs, method: str, path: str, roles: set[str]):
    segs = split_path(path)
    for i, (allow, methods, glob, rroles) in enumerate(specs):
        compiled = Rule(PolicyRule(f"rules[{i}]", allow, methods=methods, path=glob, roles=rroles))
        if methods and method not in methods:
            continue
        if compiled.path is not None and not compiled.path.match(segs):
            continue
        if rroles and not set(rroles) & roles:
            continue
        return ("allow" if allow else "forbidden"), f"authorization.rules[{i}]"
    return "forbidden", "authorization.default"


@settings(max_examples=300, deadline=None)
@given(rules, st.sampled_from(METHODS), req_paths, st.sets(st.sampled_from(ROLES)))
def test_rule_index_matches_reference(specs, method, path, roles):
    if not specs:
        return
    authz = Authorization(rules=tuple(
        PolicyRule(f"rules[{i}]", allow, methods=methods, path=glob, roles=rroles)
        for i, (allow, methods, glob, rroles) in enumerate(specs)))
    az = authorizer(authz)
    assert outcome(az, method, path, user(*roles)) == reference_rules(specs, method, path, roles)
