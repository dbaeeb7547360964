"""Authorizer.authorize end to end (without OPA): resource scopes, roles_to_scopes, rules in
order, default deny, decisions, the seeds' course example with a frozen clock."""

from __future__ import annotations

import pytest

from fastgate.config.model import Authorization, PolicyRule, ResourceScopes, TimeWindow
from fastgate.policies.authorization import build
from fastgate.policies.shared import SharedState

from .support import Clock, authorizer, error_of, make_api, make_config, outcome, user

COLOMBO = "Asia/Colombo"

SEEDS = Authorization(
    roles_to_scopes={"teacher": ("course:create", "course:view"), "student": ("course:view",)},
    resources=(
        ResourceScopes("/courses", ("POST",), ("course:create",)),
        ResourceScopes("/courses/{id}", ("GET",), ("course:view",)),
    ),
    rules=(
        PolicyRule("rules[0]", True, roles=("teacher",), path="/courses", methods=("POST",)),
        PolicyRule("rules[1]", True, roles=("student",), path="/courses/**", methods=("GET",),
                   time=TimeWindow("06:00", "22:00", COLOMBO)),
        PolicyRule("rules[2]", False),
    ),
)

TEACHER = user("teacher", subject="alice")
STUDENT = user("student", subject="bob")


def rule(n: int, allow: bool = True, **kw) -> PolicyRule:
    return PolicyRule(f"rules[{n}]", allow, **kw)


# ---------------------------------------------------------------- the seeds' example
@pytest.mark.parametrize("hh, mm, ss, expected", [
    (5, 59, 0, ("forbidden", "authorization.rules[2]")),
    (5, 59, 59, ("forbidden", "authorization.rules[2]")),
    (6, 0, 0, ("allow", "authorization.rules[1]")),
    (21, 59, 0, ("allow", "authorization.rules[1]")),
    (21, 59, 59, ("allow", "authorization.rules[1]")),
    (22, 0, 0, ("forbidden", "authorization.rules[2]")),
])
def test_seeds_student_reads_courses_only_by_day(hh, mm, ss, expected):
    az = authorizer(SEEDS, Clock().at(COLOMBO, 2026, 5, 20, hh, mm, ss))
    assert outcome(az, "GET", "/courses/7", STUDENT) == expected
    assert outcome(az, "GET", "/courses", STUDENT) == expected  # "/**" includes /courses itself
    assert outcome(az, "GET", "/courses/7/lessons/2", STUDENT) == expected


@pytest.mark.parametrize("hh, mm", [(3, 0), (6, 0), (12, 0), (23, 30)])
def test_seeds_teacher_creates_courses_at_any_time(hh, mm):
    az = authorizer(SEEDS, Clock().at(COLOMBO, 2026, 5, 20, hh, mm))
    assert outcome(az, "POST", "/courses", TEACHER) == ("allow", "authorization.rules[0]")


def test_seeds_all_else_denied():
    az = authorizer(SEEDS, Clock().at(COLOMBO, 2026, 5, 20, 12, 0))
    # the teacher has course:view through roles_to_scopes, but no rule lets a teacher GET
    assert outcome(az, "GET", "/courses/7", TEACHER) == ("forbidden", "authorization.rules[2]")
    assert outcome(az, "DELETE", "/courses/7", TEACHER) == ("forbidden", "authorization.rules[2]")
    assert outcome(az, "POST", "/courses/7", TEACHER) == ("forbidden", "authorization.rules[2]")
    assert outcome(az, "GET", "/grades", STUDENT) == ("forbidden", "authorization.rules[2]")


def test_seeds_student_cannot_create_missing_scope():
    az = authorizer(SEEDS, Clock().at(COLOMBO, 2026, 5, 20, 12, 0))
    err = error_of(az, "POST", "/courses", STUDENT)
    assert (err.status, err.code, err.detail) == (403, "insufficient_scope", "missing scope")
    assert err.headers == [("WWW-Authenticate",
                            'Bearer realm="fastgate", error="insufficient_scope", scope="course:create"')]
    assert outcome(az, "POST", "/courses", STUDENT) == ("insufficient_scope", "authorization.resources[0]")


def test_seeds_token_scopes_alone_suffice_for_the_resource():
    az = authorizer(SEEDS, Clock().at(COLOMBO, 2026, 5, 20, 12, 0))
    # scopes straight from the token (no role): the resource check passes, the rules still deny
    app = user(scopes=("course:view",), subject=None)
    assert outcome(az, "GET", "/courses/7", app) == ("forbidden", "authorization.rules[2]")
    assert outcome(az, "GET", "/courses/7", user(subject="eve")) == (
        "insufficient_scope", "authorization.resources[1]")


# ---------------------------------------------------------------- resources and scopes
def test_resource_scopes_all_of():
    authz = Authorization(resources=(ResourceScopes("/reports/**", (), ("reports:read", "tenant:acme")),))
    az = authorizer(authz)
    assert outcome(az, "GET", "/reports/q1", user(scopes=("reports:read", "tenant:acme")))[0] == "allow"
    assert outcome(az, "GET", "/reports/q1", user(scopes=("reports:read",)))[0] == "insufficient_scope"
    assert outcome(az, "GET", "/reports/q1", user(scopes=("tenant:acme", "x")))[0] == "insufficient_scope"
    err = error_of(az, "GET", "/reports", user())
    assert err.headers[0][1].endswith('scope="reports:read tenant:acme"')
    assert outcome(az, "GET", "/other", user())[0] == "allow"  # no resource, no rules: allowed


def test_roles_to_scopes_expansion():
    authz = Authorization(roles_to_scopes={"editor": ("doc:write", "doc:read"), "viewer": ("doc:read",)},
                          resources=(ResourceScopes("/docs/{id}", ("PUT",), ("doc:write",)),
                                     ResourceScopes("/docs/{id}", ("GET",), ("doc:read",))))
    az = authorizer(authz)
    assert outcome(az, "PUT", "/docs/1", user("editor"))[0] == "allow"
    assert outcome(az, "PUT", "/docs/1", user("viewer"))[0] == "insufficient_scope"
    assert outcome(az, "GET", "/docs/1", user("viewer"))[0] == "allow"
    assert outcome(az, "PUT", "/docs/1", user("viewer", "editor"))[0] == "allow"
    assert outcome(az, "PUT", "/docs/1", user("viewer", scopes=("doc:write",)))[0] == "allow"  # union
    assert outcome(az, "PUT", "/docs/1", user("unknown-role"))[0] == "insufficient_scope"
    assert az.effective_scopes(user("viewer", scopes=("x",))) == {"x", "doc:read"}
    assert az.effective_scopes(None) == frozenset()


def test_public_api_without_identity_and_a_scoped_resource():
    authz = Authorization(resources=(ResourceScopes("/admin/**", (), ("admin",)),))
    az = authorizer(authz)
    assert outcome(az, "GET", "/admin/users", None) == ("insufficient_scope", "authorization.resources[0]")
    assert outcome(az, "GET", "/public", None)[0] == "allow"


def test_trailing_slash_and_method_case_do_not_escape_a_resource():
    authz = Authorization(resources=(ResourceScopes("/courses", ("POST",), ("course:create",)),))
    az = authorizer(authz)
    assert outcome(az, "POST", "/courses/", user())[0] == "insufficient_scope"
    assert outcome(az, "post", "/courses", user())[0] == "insufficient_scope"
    az = authorizer(Authorization(resources=(ResourceScopes("/courses/{id}", ("GET",), ("course:view",)),)))
    assert outcome(az, "HEAD", "/courses/1", user())[0] == "insufficient_scope"


def test_extra_resources_merge():
    api = make_api(Authorization())
    az = build(api, make_config(api), SharedState(), Clock(),
               extra_resources=[("/pets/{id}", ["GET"], ["pets:read"], "openapi:GET /pets/{id}")])
    assert outcome(az, "GET", "/pets/1", user()) == ("insufficient_scope", "authorization.openapi:GET /pets/{id}")
    assert outcome(az, "GET", "/pets/1", user(scopes=("pets:read",)))[0] == "allow"


def test_build_returns_none_without_anything_to_enforce():
    api = make_api(None)
    assert build(api, make_config(api), SharedState()) is None
    api = make_api(Authorization(roles_to_scopes={"a": ("b",)}))
    assert build(api, make_config(api), SharedState()) is None


def test_build_refuses_bad_patterns():
    for authz in (Authorization(resources=(ResourceScopes("/a/**/b"),)),
                  Authorization(rules=(rule(0, path="no-slash"),)),
                  Authorization(rules=(rule(0, client_ips=("10.0.0.0/40",)),)),
                  Authorization(rules=(rule(0, time=TimeWindow("06:00", "22:00", "Nowhere/City")),))):
        with pytest.raises(Exception):  # noqa: B017
            authorizer(authz)


# ---------------------------------------------------------------- rules
def test_no_rules_means_allowed():
    az = authorizer(Authorization(resources=(ResourceScopes("/x", (), ()),)))
    assert outcome(az, "GET", "/anything", None)[0] == "allow"


def test_default_deny_when_no_rule_matches():
    az = authorizer(Authorization(rules=(rule(0, roles=("admin",)),)))
    assert outcome(az, "GET", "/x", user("staff")) == ("forbidden", "authorization.default")
    assert outcome(az, "GET", "/x", user("admin")) == ("allow", "authorization.rules[0]")
    err = error_of(az, "GET", "/x", user("staff"))
    assert (err.status, err.detail) == (403, "denied by policy")


def test_first_match_wins():
    rules = (rule(0, False, path="/admin/**"), rule(1, roles=("admin",)), rule(2, False))
    az = authorizer(Authorization(rules=rules))
    assert outcome(az, "GET", "/admin/x", user("admin")) == ("forbidden", "authorization.rules[0]")
    assert outcome(az, "GET", "/home", user("admin")) == ("allow", "authorization.rules[1]")
    assert outcome(az, "GET", "/home", user("guest")) == ("forbidden", "authorization.rules[2]")
    rules = (rule(0, roles=("admin",)), rule(1, False, path="/admin/**"))
    az = authorizer(Authorization(rules=rules))
    assert outcome(az, "GET", "/admin/x", user("admin")) == ("allow", "authorization.rules[0]")


def test_rule_ids_from_config():
    az = authorizer(Authorization(rules=(PolicyRule("block-scrapers", False, client_ips=("198.51.100.0/24",)),
                                         PolicyRule("rules[1]", True))))
    assert outcome(az, "GET", "/", None, client_ip="198.51.100.9") == ("forbidden", "authorization.block-scrapers")


def test_rule_roles_any_of():
    az = authorizer(Authorization(rules=(rule(0, roles=("a", "b")),)))
    assert outcome(az, "GET", "/", user("b"))[0] == "allow"
    assert outcome(az, "GET", "/", user("c", "a"))[0] == "allow"
    assert outcome(az, "GET", "/", user("c"))[0] == "forbidden"
    assert outcome(az, "GET", "/", user())[0] == "forbidden"
    assert outcome(az, "GET", "/", None)[0] == "forbidden"


def test_rule_scopes_all_of_including_role_scopes():
    authz = Authorization(roles_to_scopes={"ops": ("deploy",)},
                          rules=(rule(0, scopes=("deploy", "prod")),))
    az = authorizer(authz)
    assert outcome(az, "GET", "/", user(scopes=("deploy", "prod")))[0] == "allow"
    assert outcome(az, "GET", "/", user("ops", scopes=("prod",)))[0] == "allow"
    assert outcome(az, "GET", "/", user(scopes=("deploy",)))[0] == "forbidden"
    assert outcome(az, "GET", "/", None)[0] == "forbidden"


def test_rule_applications():
    az = authorizer(Authorization(rules=(rule(0, applications=("mobile-app", "partner")),)))
    assert outcome(az, "GET", "/", user(application="partner"))[0] == "allow"
    assert outcome(az, "GET", "/", user(application="web"))[0] == "forbidden"
    assert outcome(az, "GET", "/", user(application=None))[0] == "forbidden"
    assert outcome(az, "GET", "/", None)[0] == "forbidden"


def test_rule_methods_and_path():
    az = authorizer(Authorization(rules=(rule(0, methods=("GET", "HEAD"), path="/items/*"),)))
    assert outcome(az, "GET", "/items/1", None)[0] == "allow"
    assert outcome(az, "HEAD", "/items/1/", None)[0] == "allow"
    assert outcome(az, "POST", "/items/1", None)[0] == "forbidden"
    assert outcome(az, "GET", "/items", None)[0] == "forbidden"
    assert outcome(az, "GET", "/items/1/2", None)[0] == "forbidden"


def test_rule_deny_cannot_be_skipped_by_method_case_or_head():
    az = authorizer(Authorization(rules=(rule(0, False, methods=("DELETE",)), rule(1))))
    assert outcome(az, "delete", "/x", None)[0] == "forbidden"
    assert outcome(az, "Delete", "/x", None)[0] == "forbidden"
    az = authorizer(Authorization(rules=(rule(0, False, methods=("GET",), path="/secret"), rule(1))))
    assert outcome(az, "HEAD", "/secret", None) == ("forbidden", "authorization.rules[0]")
    assert outcome(az, "POST", "/secret", None) == ("allow", "authorization.rules[1]")


@pytest.mark.parametrize("ip, ok", [
    ("10.1.2.3", True), ("::ffff:10.1.2.3", True), ("2001:db8::7", True), ("192.0.2.1", False),
    ("2001:db9::1", False), ("", False), ("not-an-ip", False),
])
def test_rule_client_ips(ip, ok):
    az = authorizer(Authorization(rules=(rule(0, client_ips=("10.0.0.0/8", "2001:db8::/32")),)))
    assert (outcome(az, "GET", "/", None, client_ip=ip)[0] == "allow") is ok


def test_rule_client_ips_deny_list():
    az = authorizer(Authorization(rules=(rule(0, False, client_ips=("203.0.113.0/24", "::ffff:198.51.100.0/120")),
                                         rule(1))))
    assert outcome(az, "GET", "/", None, client_ip="203.0.113.5") == ("forbidden", "authorization.rules[0]")
    assert outcome(az, "GET", "/", None, client_ip="::ffff:203.0.113.5")[0] == "forbidden"
    assert outcome(az, "GET", "/", None, client_ip="198.51.100.77")[0] == "forbidden"
    assert outcome(az, "GET", "/", None, client_ip="192.0.2.1") == ("allow", "authorization.rules[1]")


def test_rule_claims():
    az = authorizer(Authorization(rules=(rule(0, claims={"tenant": ["acme", "globex"], "groups": "staff"}),)))
    ok = user(claims={"tenant": "acme", "groups": ["staff", "x"]})
    assert outcome(az, "GET", "/", ok)[0] == "allow"
    assert outcome(az, "GET", "/", user(claims={"tenant": "acme", "groups": ["x"]}))[0] == "forbidden"
    assert outcome(az, "GET", "/", user(claims={"tenant": "initech", "groups": "staff"}))[0] == "forbidden"
    assert outcome(az, "GET", "/", user(claims={"groups": "staff"}))[0] == "forbidden"
    assert outcome(az, "GET", "/", None)[0] == "forbidden"


def test_rule_time_window_in_a_dst_zone():
    authz = Authorization(rules=(rule(0, time=TimeWindow("09:00", "17:00", "America/New_York")),))
    clock = Clock()
    az = authorizer(authz, clock)
    clock.at("UTC", 2024, 3, 10, 13, 0)  # 09:00 EDT on the spring-forward day
    assert outcome(az, "GET", "/", None)[0] == "allow"
    clock.at("UTC", 2024, 3, 9, 13, 0)  # 08:00 EST the day before
    assert outcome(az, "GET", "/", None)[0] == "forbidden"
    clock.at("UTC", 2024, 3, 10, 20, 59)  # 16:59 EDT
    assert outcome(az, "GET", "/", None)[0] == "allow"
    clock.at("UTC", 2024, 3, 10, 21, 0)  # 17:00 EDT
    assert outcome(az, "GET", "/", None)[0] == "forbidden"


def test_rule_night_window_wraps():
    authz = Authorization(rules=(rule(0, False, path="/batch/**", time=TimeWindow("22:00", "06:00", "UTC")),
                                 rule(1)))
    clock = Clock()
    az = authorizer(authz, clock)
    for hh, mm, denied in ((21, 59, False), (22, 0, True), (3, 0, True), (5, 59, True), (6, 0, False)):
        clock.at("UTC", 2026, 2, 1, hh, mm)
        assert (outcome(az, "POST", "/batch/run", None)[0] == "forbidden") is denied, (hh, mm)
        assert outcome(az, "POST", "/other", None)[0] == "allow"


def test_all_conditions_together():
    authz = Authorization(rules=(
        rule(0, roles=("clerk",), scopes=("ledger",), applications=("books",), methods=("POST",),
             path="/ledger/**", client_ips=("10.0.0.0/8",), claims={"dept": "finance"},
             time=TimeWindow("08:00", "18:00", "Europe/London")),
    ))
    clock = Clock().at("Europe/London", 2026, 7, 1, 9, 0)
    az = authorizer(authz, clock)
    good = user("clerk", scopes=("ledger",), application="books", claims={"dept": "finance"})
    assert outcome(az, "POST", "/ledger/entries", good, client_ip="10.2.3.4")[0] == "allow"
    assert outcome(az, "POST", "/ledger/entries", good, client_ip="11.2.3.4")[0] == "forbidden"
    assert outcome(az, "GET", "/ledger/entries", good, client_ip="10.2.3.4")[0] == "forbidden"
    bad_claim = user("clerk", scopes=("ledger",), application="books", claims={"dept": "sales"})
    assert outcome(az, "POST", "/ledger/entries", bad_claim, client_ip="10.2.3.4")[0] == "forbidden"
    clock.at("Europe/London", 2026, 7, 1, 18, 0)
    assert outcome(az, "POST", "/ledger/entries", good, client_ip="10.2.3.4")[0] == "forbidden"


def test_resources_checked_before_rules():
    authz = Authorization(resources=(ResourceScopes("/x", (), ("s",)),), rules=(rule(0),))
    az = authorizer(authz)
    assert outcome(az, "GET", "/x", user()) == ("insufficient_scope", "authorization.resources[0]")
    assert outcome(az, "GET", "/x", user(scopes=("s",))) == ("allow", "authorization.rules[0]")
