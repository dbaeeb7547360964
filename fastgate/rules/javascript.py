"""Cross-site scripting rules (set `javascript`): script markup, event handlers inside a tag,
script URLs that run something, and calls that only make sense after breaking out of a string.

Invariant: prose saying script, alert, onload, document or expression, and harmless markup-ish
text ("5 < 6 and 7 > 3", "Tom & Jerry", <b>bold</b>, <img src=...>) match nothing here.
"""

from __future__ import annotations

from fastgate.rules._base import Rule, kw

__all__ = ["JAVASCRIPT"]

_JS = kw("javascript")
_VBS = kw("vbscript")
_EVENTS = (
    r"(?:error|load|click|dblclick|mouse\w+|focus\w*|blur|change|submit|key\w+|toggle|begin|end"
    r"|animation\w+|transition\w+|pointer\w+|drag\w*|drop|input|select|wheel|copy|paste|cut|play"
    r"|playing|pause|scroll|resize|unload|message|hashchange|pageshow|pagehide|beforeunload"
    r"|contextmenu|auxclick|touch\w+|show|search|invalid|reset|cancel|canplay\w*|loadstart"
    r"|durationchange|readystatechange|beforescriptexecute|afterscriptexecute|start|finish"
    r"|repeat|popstate|storage|online|offline|copy|beforecopy|beforecut|beforepaste)"
)

JAVASCRIPT: list[Rule] = [
    Rule("javascript-script-tag", r"</?script\b"),
    # An event-handler attribute inside a tag: <img src=x onerror=alert(1)>, <svg/onload=...>
    Rule("javascript-handler", r"<[a-z][\w:-]*[^>]{0,400}?[\s/\"'`;]on[a-z]{3,30} *="),
    # An attribute breakout: "><... or " autofocus onfocus=..., ' onmouseover='...
    Rule("javascript-attr-breakout", rf"['\"`] *[ /]*\bon{_EVENTS} *="),
    # A script URL: javascript:alert(1), jav&#x09;ascript:..., javascript://%0aalert(1)
    Rule(
        "javascript-uri",
        rf"\b(?:{_JS}|{_VBS}|livescript) *: *(?:[\w.$\[\]'\"]+ *[(`=]|//|/\*|\\|%|\[|\(|')"
        rf"|(?:href|src|action|formaction|data|xlink:href|background|dynsrc|lowsrc|poster|code"
        rf"|srcdoc|to|from|values) *= *['\"]? *(?:{_JS}|{_VBS}|livescript) *:",
    ),
    # Markup that loads or runs something: iframes/objects with a source, refresh meta, base href
    Rule(
        "javascript-active-tag",
        r"<(?:iframe|frame|frameset|object|embed|applet|base|isindex|xss|layer|ilayer|bgsound"
        r"|portal)\b[^>]{0,400}?\b(?:src|data|href|code|codebase|content|srcdoc|action|type)"
        r" *=|<meta\b[^>]{0,400}?http-equiv *= *['\"]? *refresh|\bsrcdoc *= *['\"]? *<",
    ),
    # data: URLs carrying a document or a script
    Rule(
        "javascript-data-uri",
        r"\bdata *: *(?:text/html|image/svg\+xml|application/(?:x-)?(?:javascript|ecmascript)"
        r"|text/(?:javascript|ecmascript|xml))[;,]",
    ),
    # CSS that runs script: expression(...), behavior:, -moz-binding:, url(javascript:...)
    Rule(
        "javascript-css",
        r"[:=] *['\"]? *expression *\(|\bbehavior *: *url *\(|-moz-binding *:"
        rf"|url *\( *['\"]? *(?:{_JS}|{_VBS}) *:|<style\b[^>]*>[^<]{{0,400}}?(?:@import|expression"
        r" *\(|javascript *:)",
    ),
    # DOM sinks and sources an injected script touches
    Rule(
        "javascript-dom",
        r"\bdocument *\. *(?:cookie\b|domain\b|write(?:ln)? *\(|location *(?:\.|=))"
        r"|\bwindow *\. *(?:location *(?:=|\.)|open *\(|name\b)|\blocation *\. *(?:href|hash)"
        r" *=|\bstring *\. *fromcharcode *\(|\beval *\( *(?:atob|unescape|decodeuri|string|name"
        r"|location|['\"`])|\b(?:set(?:timeout|interval)) *\( *['\"`]|\bfetch *\( *['\"`]"
        r" *(?:https?:)?//[^'\"`]{0,200}\+ *document",
    ),
    # alert(1), prompt`1`, confirm(document.domain): a call with a payload-shaped argument
    Rule(
        "javascript-call",
        r"\b(?:alert|prompt|confirm)(?:\( *(?:\d+ *\)|['\"`/]|document\b|window\b|this\b|top\b"
        r"|self\b|parent\b|location\b|string\b|atob\b|[a-z_$][\w$]*\.)|`)",
    ),
    # A JS string breakout followed by a statement: '-alert(1)-', ";alert(1)//, '};x=1;//
    Rule(
        "javascript-breakout",
        r"['\"] *[-+*/;|&,)}] *(?:alert|prompt|confirm|eval|top *\[|window *\[|self *\[)",
    ),
]
