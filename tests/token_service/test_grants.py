"""Pure pieces of the grants and endpoints: PKCE S256, scope intersection, form rules."""

from __future__ import annotations

import pytest

from fastgate.config.model import Api, Application, Authorization, Upstream, UpstreamUrl, User
from fastgate.token_service.endpoints import parse_form
from fastgate.token_service.grants import Grants, OAuthError, s256


def test_pkce_s256_rfc7636_appendix_b():
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_form_rules():
    assert parse_form(b"a=1&b=&c=x+y%21") == {"a": "1", "c": "x y!"}  # empty = absent
    with pytest.raises(OAuthError) as e:
        parse_form(b"a=1&a=2")
    assert e.value.error == "invalid_request"
    with pytest.raises(OAuthError):
        parse_form(b"a=%ff")


class _G(Grants):
    """Only the scope logic: no state needed."""

    def __init__(self, apis, users) -> None:  # noqa: D107 - mirrors Grants' scope tables
        governed = set()
        self.role_scopes = {}
        for api in apis:
            for role, scopes in api.authorization.roles_to_scopes.items():
                governed.update(scopes)
                self.role_scopes.setdefault(role, set()).update(scopes)
        self.governed = frozenset(governed)
        self.users = {u.name: u for u in users}


def test_scope_intersection():
    api = Api("a", "/a", Upstream((UpstreamUrl("http", "h", 80),)),
              authorization=Authorization(roles_to_scopes={"clerk": ("o:r", "o:w"), "viewer": ("o:r",)}))
    g = _G([api], [])
    client = Application("c", client_id="c", scopes=("o:r", "o:w", "openid", "free"))
    viewer = User("bob", "x", roles=("viewer",))
    assert g.grant_scopes(None, client, None) == {"o:r", "o:w", "openid", "free"}
    assert g.grant_scopes(None, client, viewer) == {"o:r", "openid", "free"}  # ungoverned pass
    assert g.grant_scopes("o:r o:w", client, viewer) == {"o:r"}
    with pytest.raises(OAuthError) as e:
        g.grant_scopes("o:w", client, viewer)
    assert e.value.error == "invalid_scope"
    with pytest.raises(OAuthError):
        g.grant_scopes("admin", client, None)
    with pytest.raises(OAuthError):  # refresh: never beyond the original grant
        g.grant_scopes("o:r o:w", client, None, ceiling=frozenset({"o:r"}))
    assert g.grant_scopes("o:r", client, None, ceiling=frozenset({"o:r", "o:w"})) == {"o:r"}
